import { createServer, connect, Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/**
 * Test-only: a TCP proxy in front of a shared service (PostgreSQL, Redis, a Kafka bootstrap
 * address) that a test can cut or stall, which is what a client sees when the service goes down
 * or the network between them fails, without touching the service other tests share.
 */
export interface TcpProxy {
  readonly port: number;
  /** Cuts the open connections and refuses new ones until resume(): the service is down. */
  down(): void;
  /**
   * Stops forwarding anything, either way, on the open connections, and accepts new ones that
   * never reach the service: a network partition, where nothing fails and nothing answers, so
   * only the client's own timeouts end its waits. resume() closes those connections.
   */
  stall(): void;
  resume(): void;
  close(): Promise<void>;
}

/** What a proxy does to the bytes of one connection on their way, each direction its own stream. */
export interface ProxyIntercept {
  readonly toServer: Duplex;
  readonly toClient: Duplex;
}

export interface TcpProxyOptions {
  /** Called per connection; without it bytes pass unchanged. */
  readonly intercept?: () => ProxyIntercept;
  /** Port to listen on; default any free one. */
  readonly listenPort?: number;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1', options: TcpProxyOptions = {}): Promise<TcpProxy> {
  let state: 'up' | 'down' | 'stalled' = 'up';
  const sockets = new Set<Socket>();
  /** Connections held open without forwarding since stall(). */
  const stalled = new Set<Socket>();

  function hold(socket: Socket): void {
    socket.unpipe();
    socket.pause();
    stalled.add(socket);
  }

  const server = createServer((client) => {
    if (state === 'down') {
      client.destroy();
      return;
    }
    client.on('error', () => client.destroy());
    if (state === 'stalled') {
      hold(client);
      return;
    }
    const upstream = connect(targetPort, targetHost);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', close);
      socket.on('close', close);
    }
    const intercept = options.intercept?.();
    if (intercept === undefined) {
      client.pipe(upstream);
      upstream.pipe(client);
    } else {
      for (const stream of [intercept.toServer, intercept.toClient]) stream.on('error', close);
      client.pipe(intercept.toServer).pipe(upstream);
      upstream.pipe(intercept.toClient).pipe(client);
    }
  });
  await new Promise<void>((resolve) => server.listen(options.listenPort ?? 0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');

  function destroyAll(): void {
    for (const socket of [...sockets, ...stalled]) socket.destroy();
    sockets.clear();
    stalled.clear();
  }

  return {
    port: address.port,
    down() {
      state = 'down';
      destroyAll();
    },
    stall() {
      state = 'stalled';
      for (const socket of sockets) hold(socket);
      sockets.clear();
    },
    resume() {
      if (state === 'stalled') destroyAll();
      state = 'up';
    },
    async close() {
      state = 'down';
      destroyAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A proxy in front of the service a URL names (postgres://, redis://), and the same URL pointed
 * at the proxy: what a test hands to the client or process it wants to cut off.
 */
export async function startTcpProxyFor(url: string, defaultPort?: number): Promise<{ proxy: TcpProxy; url: string }> {
  const parsed = new URL(url);
  const port = Number(parsed.port || defaultPort || DEFAULT_PORTS[parsed.protocol]);
  if (!Number.isInteger(port) || port <= 0) throw new Error(`no port in ${url}`);
  const proxy = await startTcpProxy(port, parsed.hostname);
  parsed.hostname = '127.0.0.1';
  parsed.port = String(proxy.port);
  return { proxy, url: parsed.toString() };
}

const DEFAULT_PORTS: Record<string, number> = { 'postgres:': 5432, 'postgresql:': 5432, 'redis:': 6379 };
