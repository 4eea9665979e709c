import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from '@tally/test-support';
import { startDnsServer } from './testing/dnsServer';
import { createWebhookSender, RESPONSE_BODY_LIMIT } from './webhookSender';

/** A server on 127.0.0.1 whose handler each test sets. */
async function localServer(handler: http.RequestListener): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Tests that expect an answer allow far more than a local server needs: under a loaded CI run a
 * 500 ms timer can fire before a 64 KiB answer arrives. Only the timeout test uses a short one.
 */
const open = { allowPrivateNetworks: true, connectTimeoutMs: 30_000, responseTimeoutMs: 30_000 };

describe('webhook sender', () => {
  it('posts the body and headers, and keeps the status and the first KiB of the answer', async () => {
    let received: { headers: http.IncomingHttpHeaders; body: string } | undefined;
    const server = await localServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        received = { headers: req.headers, body: Buffer.concat(chunks).toString() };
        res.writeHead(202).end('x'.repeat(64 * 1024));
      });
    });
    try {
      const response = await createWebhookSender(open)({ url: server.url, headers: { 'webhook-id': 'msg_1' }, body: '{"a":1}' });
      expect(response).toMatchObject({ statusCode: 202, error: null });
      expect(response.body).toHaveLength(RESPONSE_BODY_LIMIT);
      expect(received?.body).toBe('{"a":1}');
      expect(received?.headers['webhook-id']).toBe('msg_1');
      expect(received?.headers['content-type']).toBe('application/json');
    } finally {
      await server.close();
    }
  });

  it('gives up on a receiver that does not answer within the response timeout', async () => {
    const server = await localServer(() => undefined);
    try {
      const response = await createWebhookSender({ ...open, responseTimeoutMs: 500 })({ url: server.url, headers: {}, body: '{}' });
      expect(response).toMatchObject({ statusCode: null, error: 'response timeout after 500 ms' });
    } finally {
      await server.close();
    }
  });

  it('abandons a request when its signal is aborted (a stop), reporting no attempt', async () => {
    const server = await localServer(() => undefined);
    try {
      const stopping = new AbortController();
      const sending = createWebhookSender(open)({ url: server.url, headers: {}, body: '{}', signal: stopping.signal });
      stopping.abort();
      expect(await sending).toMatchObject({ statusCode: null, aborted: true });
    } finally {
      await server.close();
    }
  });

  it('reports a refused connection as an error, not a status', async () => {
    const server = await localServer(() => undefined);
    const { url } = server;
    await server.close();
    const response = await createWebhookSender(open)({ url, headers: {}, body: '{}' });
    expect(response.statusCode).toBeNull();
    expect(response.error).toMatch(/ECONNREFUSED/);
  });

  it('does not follow a redirect', async () => {
    const server = await localServer((_req, res) => res.writeHead(307, { location: 'http://169.254.169.254/' }).end());
    try {
      const response = await createWebhookSender(open)({ url: server.url, headers: {}, body: '{}' });
      expect(response.statusCode).toBe(307);
    } finally {
      await server.close();
    }
  });

  it('refuses loopback, by literal and by name, without the private-networks setting, and sends nothing', async () => {
    let requests = 0;
    const server = await localServer((_req, res) => {
      requests += 1;
      res.end();
    });
    try {
      const strict = createWebhookSender({ ...open, allowPrivateNetworks: false });
      const byLiteral = await strict({ url: server.url, headers: {}, body: '{}' });
      const byName = await strict({ url: server.url.replace('127.0.0.1', 'localhost'), headers: {}, body: '{}' });
      expect(byLiteral).toMatchObject({ statusCode: null, error: expect.stringMatching(/non-public/) });
      expect(byName).toMatchObject({ statusCode: null, error: expect.stringMatching(/non-public/) });
      expect(requests).toBe(0);
    } finally {
      await server.close();
    }
  });
});

/**
 * Holds every worker thread of libuv's pool, as getaddrinfo calls waiting on a hung DNS server
 * would: each opens a FIFO for reading, which blocks its thread until a writer opens it. Returns
 * the release.
 */
async function holdThreadPool(): Promise<() => Promise<void>> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'tally-pool-'));
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  const held = Array.from({ length: threads }, () => fs.promises.open(fifo, 'r'));
  return async () => {
    // A writer opening (non-blocking: readers are waiting) lets every held open return.
    const writer = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    for (const handle of await Promise.all(held)) await handle.close();
    fs.closeSync(writer);
    await fs.promises.rm(dir, { recursive: true });
  };
}

describe('webhook sender resolving names', () => {
  let requests = 0;
  let server: Awaited<ReturnType<typeof localServer>>;
  beforeEach(async () => {
    requests = 0;
    server = await localServer((_req, res) => {
      requests += 1;
      res.writeHead(204).end();
    });
  });
  afterEach(() => server.close());

  it('needs no worker thread: sends by name go out while every thread of the pool is held', async () => {
    const dns = await startDnsServer({ 'hooks.test': '127.0.0.1' });
    const release = await holdThreadPool();
    try {
      // dns.lookup would queue for a thread here until the connect timeout failed a healthy receiver.
      const send = createWebhookSender({ ...open, connectTimeoutMs: 3_000, dns: { servers: [dns.address] } });
      const byName = await send({ url: server.url.replace('127.0.0.1', 'hooks.test'), headers: {}, body: '{}' });
      const byLocalhost = await send({ url: server.url.replace('127.0.0.1', 'localhost'), headers: {}, body: '{}' });
      expect(byName).toMatchObject({ statusCode: 204, error: null });
      expect(byLocalhost).toMatchObject({ statusCode: 204, error: null });
    } finally {
      await release();
      await dns.close();
    }
  });

  it("holds back no other send while names' DNS servers never answer", async () => {
    const dns = await startDnsServer({ 'hooks.test': '127.0.0.1' });
    const stopping = new AbortController();
    try {
      const send = createWebhookSender({ ...open, dns: { servers: [dns.address], timeoutMs: 60_000, tries: 1 } });
      const hanging = Array.from({ length: 8 }, (_, n) =>
        send({ url: server.url.replace('127.0.0.1', `hang-${n}.test`), headers: {}, body: '{}', signal: stopping.signal }),
      );
      let settled = 0;
      for (const sending of hanging) void sending.then(() => (settled += 1));
      await waitFor(() => dns.unanswered.filter((name) => name.startsWith('hang-')).length >= 16, { description: 'the A and AAAA queries of 8 names, unanswered' });
      const healthy = await send({ url: server.url.replace('127.0.0.1', 'hooks.test'), headers: {}, body: '{}' });
      expect(healthy).toMatchObject({ statusCode: 204, error: null });
      expect(settled).toBe(0);
      stopping.abort();
      expect(await Promise.all(hanging)).toEqual(Array.from({ length: 8 }, () => expect.objectContaining({ aborted: true })));
      expect(requests).toBe(1);
    } finally {
      stopping.abort();
      await dns.close();
    }
  });

  it('asks the system resolver for a name DNS says does not exist as given (a short name, /etc/hosts), and checks what it gives', async () => {
    const dns = await startDnsServer({}, ['receiver.ns', 'inward.ns']);
    const asked: string[] = [];
    // What getaddrinfo would find with the search list (receiver.ns.svc.cluster.local) or /etc/hosts.
    const known: Record<string, string> = { 'receiver.ns': '127.0.0.1', 'inward.ns': '10.0.0.7' };
    const lookup = async (host: string) => (asked.push(host), [{ address: known[host]!, family: 4 }]);
    try {
      const send = createWebhookSender({ ...open, dns: { servers: [dns.address], lookup } });
      const sent = await send({ url: server.url.replace('127.0.0.1', 'receiver.ns'), headers: {}, body: '{}' });
      expect(sent).toMatchObject({ statusCode: 204, error: null });
      // The same address checks as DNS's answers get.
      const strict = createWebhookSender({ ...open, allowPrivateNetworks: false, dns: { servers: [dns.address], lookup } });
      const refused = await strict({ url: 'http://inward.ns:9/hook', headers: {}, body: '{}' });
      expect(refused).toMatchObject({ statusCode: null, error: expect.stringMatching(/10\.0\.0\.7.*non-public/) });
      expect(asked).toEqual(['receiver.ns', 'inward.ns']);
      expect(requests).toBe(1);
    } finally {
      await dns.close();
    }
  });

  it('does not ask the system resolver for a name whose DNS times out: no worker thread, the resolver timeout', async () => {
    const dns = await startDnsServer({});
    const release = await holdThreadPool();
    try {
      // The default lookup (getaddrinfo): were it asked, it would wait for a thread until the connect timeout.
      const send = createWebhookSender({ ...open, connectTimeoutMs: 5_000, dns: { servers: [dns.address], timeoutMs: 100, tries: 1 } });
      const response = await send({ url: server.url.replace('127.0.0.1', 'hang.test'), headers: {}, body: '{}' });
      expect(response).toMatchObject({ statusCode: null, error: expect.stringMatching(/ETIMEOUT/) });
    } finally {
      await release();
      await dns.close();
    }
  });

  it('ends a lookup its DNS server never answers with the resolver timeout, not the connect timeout', async () => {
    const dns = await startDnsServer({});
    try {
      const send = createWebhookSender({ ...open, dns: { servers: [dns.address], timeoutMs: 100, tries: 2 } });
      const response = await send({ url: server.url.replace('127.0.0.1', 'hang.test'), headers: {}, body: '{}' });
      expect(response).toMatchObject({ statusCode: null, error: expect.stringMatching(/ETIMEOUT/) });
      expect(requests).toBe(0);
    } finally {
      await dns.close();
    }
  });
});
