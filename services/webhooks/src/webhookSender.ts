import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { guardedLookup, isPublicAddress, type AddressPolicy } from './addressGuard';
import { WebhookUrlRefusedError } from './webhookErrors';

/** Only the first KiB of a response is kept: enough to see an error message, never a receiver's whole page. */
export const RESPONSE_BODY_LIMIT = 1024;

interface WebhookSenderOptions extends AddressPolicy {
  /** How long the TCP (and TLS) connection may take to open. */
  readonly connectTimeoutMs: number;
  /** How long the receiver may take to answer, body included, once connected. */
  readonly responseTimeoutMs: number;
  /** Sent as User-Agent. */
  readonly userAgent?: string;
}

export interface WebhookRequest {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** Aborts the request (the process is stopping): the answer is then `aborted`, no attempt to record. */
  readonly signal?: AbortSignal;
}

/** What one attempt came to: a status (any), or an error and no status. */
export interface WebhookResponse {
  readonly statusCode: number | null;
  readonly error: string | null;
  /** At most RESPONSE_BODY_LIMIT bytes of the body, decoded as UTF-8. */
  readonly body: string | null;
  readonly durationMs: number;
  /** The request was abandoned by its signal: it says nothing of the receiver. */
  readonly aborted?: boolean;
}

export type WebhookSender = (request: WebhookRequest) => Promise<WebhookResponse>;

/**
 * POSTs a webhook, never following redirects (a 3xx is an answer like any other, and counts
 * as a failure), through a DNS lookup that refuses non-public addresses at connect time
 * (addressGuard). A literal IP in the URL skips DNS, so it is checked here. Never throws: every
 * failure is part of the answer, for the delivery's attempt log.
 */
export function createWebhookSender(options: WebhookSenderOptions): WebhookSender {
  const lookup = guardedLookup(options);
  return (request) =>
    new Promise<WebhookResponse>((resolve) => {
      const started = process.hrtime.bigint();
      const elapsed = () => Number((process.hrtime.bigint() - started) / 1_000_000n);
      let url: URL;
      try {
        url = new URL(request.url);
        const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
        if (!options.allowPrivateNetworks && isIP(host) !== 0 && !isPublicAddress(host)) {
          throw new WebhookUrlRefusedError(`${host} is a loopback, private, link-local or otherwise non-public address`);
        }
      } catch (error) {
        resolve({ statusCode: null, error: (error as Error).message, body: null, durationMs: elapsed() });
        return;
      }
      let settled = false;
      let responseTimer: NodeJS.Timeout | undefined;
      const finish = (result: Omit<WebhookResponse, 'durationMs'>) => {
        if (settled) return;
        settled = true;
        clearTimeout(connectTimer);
        clearTimeout(responseTimer);
        resolve({ ...result, durationMs: elapsed() });
      };
      const client = url.protocol === 'https:' ? https : http;
      const body = Buffer.from(request.body, 'utf8');
      const req = client.request(url, {
        method: 'POST',
        lookup,
        // One connection per attempt: an agent would keep sockets to receivers open between them.
        agent: false,
        headers: {
          ...request.headers,
          'content-type': 'application/json',
          'content-length': String(body.length),
          'user-agent': options.userAgent ?? 'Tally-Webhooks/1',
        },
      });
      const fail = (message: string) => {
        finish({ statusCode: null, error: message, body: null });
        req.destroy();
      };
      // Counts the lookup too: it is this receiver's own DNS, on the event loop (addressGuard), with
      // no shared queue of other names' lookups to wait in (only a name DNS said does not exist as
      // given goes on to getaddrinfo's worker threads). With two DNS servers that do not answer,
      // c-ares gives up after 6 s: this timer ends the attempt first.
      const connectTimer = setTimeout(() => fail(`connect timeout after ${options.connectTimeoutMs} ms`), options.connectTimeoutMs);
      // Stopping does not wait for a slow receiver: the attempt is dropped, and made again (same
      // webhook-id) by whichever process delivers next.
      const abort = () => {
        if (settled) return;
        finish({ statusCode: null, error: 'aborted: the deliverer is stopping', body: null, aborted: true });
        req.destroy();
      };
      if (request.signal?.aborted) abort();
      request.signal?.addEventListener('abort', abort, { once: true });
      req.once('close', () => request.signal?.removeEventListener('abort', abort));
      req.on('socket', (socket) => {
        const connected = () => {
          clearTimeout(connectTimer);
          responseTimer = setTimeout(() => fail(`response timeout after ${options.responseTimeoutMs} ms`), options.responseTimeoutMs);
        };
        if (!socket.connecting) connected();
        else socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', connected);
      });
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (!settled) finish({ statusCode: null, error: error.code !== undefined ? `${error.code}: ${error.message}` : error.message, body: null });
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on('data', (chunk: Buffer) => {
          if (kept >= RESPONSE_BODY_LIMIT) return;
          const part = chunk.subarray(0, RESPONSE_BODY_LIMIT - kept);
          chunks.push(part);
          kept += part.length;
          // The rest is not wanted: stop reading rather than download a receiver's large page.
          if (kept >= RESPONSE_BODY_LIMIT) {
            finish({ statusCode: res.statusCode ?? null, error: null, body: Buffer.concat(chunks).toString('utf8') });
            res.destroy();
          }
        });
        res.on('end', () => finish({ statusCode: res.statusCode ?? null, error: null, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (error) => finish({ statusCode: res.statusCode ?? null, error: error.message, body: Buffer.concat(chunks).toString('utf8') }));
      });
      req.end(body);
    });
}
