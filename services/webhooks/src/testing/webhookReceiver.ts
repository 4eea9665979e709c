import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WebhookPayloadV1 } from '@tally/schemas';
import { Webhook } from 'standardwebhooks';

/** How the receiver answers the next request: 200 (with `body`, default "ok"), a status of choice, or never (a hung receiver). */
export type ReceiverMode =
  | { readonly kind: 'ok'; readonly body?: string }
  | { readonly kind: 'status'; readonly status: number }
  | { readonly kind: 'hang' };

export interface ReceivedWebhook {
  readonly id: string;
  readonly payload: WebhookPayloadV1;
}

/**
 * A webhook receiver as a customer would run one: a real HTTP server on 127.0.0.1 that verifies
 * every request with the Standard Webhooks library (any failure is kept in `rejected`, never
 * acted on) and deduplicates by webhook-id, as the specification asks receivers to. Tests set
 * `mode` to make it fail for a while.
 */
export interface WebhookReceiver {
  readonly url: string;
  /** Secrets it verifies with; a request verified by any of them is accepted. */
  secrets: string[];
  mode: ReceiverMode;
  /** Each webhook-id's first verified message, in arrival order. */
  readonly delivered: ReceivedWebhook[];
  /** Every request that arrived, verified or not, with what was answered. */
  readonly requests: Array<{ readonly id: string | undefined; readonly answered: number | 'hung' }>;
  /** Requests that failed verification, with the reason. */
  readonly rejected: string[];
  close(): Promise<void>;
}

export async function startWebhookReceiver(options: { secrets?: string[]; path?: string } = {}): Promise<WebhookReceiver> {
  const seen = new Set<string>();
  const hung = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const id = typeof req.headers['webhook-id'] === 'string' ? req.headers['webhook-id'] : undefined;
      const mode = receiver.mode;
      if (mode.kind === 'hang') {
        receiver.requests.push({ id, answered: 'hung' });
        hung.add(res);
        return;
      }
      const status = mode.kind === 'status' ? mode.status : 200;
      receiver.requests.push({ id, answered: status });
      if (status >= 200 && status < 300) {
        const headers = Object.fromEntries(Object.entries(req.headers).map(([name, value]) => [name, String(value)]));
        const verified = receiver.secrets.some((secret) => {
          try {
            new Webhook(secret).verify(body, headers);
            return true;
          } catch {
            return false;
          }
        });
        if (!verified || id === undefined) {
          receiver.rejected.push(`${id ?? '(no id)'}: no signature verified`);
          res.writeHead(400).end('bad signature');
          return;
        }
        if (!seen.has(id)) {
          seen.add(id);
          receiver.delivered.push({ id, payload: JSON.parse(body) as WebhookPayloadV1 });
        }
      }
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status >= 300 ? `failing on purpose (${status})` : mode.kind === 'ok' ? (mode.body ?? 'ok') : 'ok');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const receiver: WebhookReceiver = {
    url: `http://127.0.0.1:${port}${options.path ?? '/webhooks'}`,
    secrets: options.secrets ?? [],
    mode: { kind: 'ok' },
    delivered: [],
    requests: [],
    rejected: [],
    async close() {
      for (const res of hung) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return receiver;
}
