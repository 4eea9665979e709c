import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { TLSSocket } from 'node:tls';
import { createUsageEventDecoder } from '@tally/metering';
import { createPool } from '@tally/postgres';
import { createSelfSignedCertificate, stackConfig, waitFor, type SelfSignedCertificate } from '@tally/test-support';
import { Redis } from 'ioredis';
import { createKafka } from '@tally/kafka';
import { logLevel } from 'kafkajs';
import pg from 'pg';
import { loadConfig } from './config';
import { probeRegistry, probeTcp } from './dependencyProbes';
import { serviceConnections } from './serviceConnections';

jest.setTimeout(60_000);

const SSL_REQUEST_CODE = 80877103;

function listen(server: Server | HttpServer): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

/**
 * TLS to PostgreSQL through a proxy the test owns: it answers PostgreSQL's SSLRequest with "S",
 * terminates TLS with the test's certificate and forwards the plaintext to the local server, so
 * the client path (sslmode, sslrootcert) is exercised without changing the shared server's
 * configuration. A client that does not ask for TLS is cut off.
 */
function postgresTlsProxy(certificate: SelfSignedCertificate, upstream: URL) {
  let tlsSessions = 0;
  const server = createServer((client) => {
    client.on('error', () => undefined);
    client.once('data', (first) => {
      if (first.length !== 8 || first.readInt32BE(4) !== SSL_REQUEST_CODE) {
        client.destroy();
        return;
      }
      client.write('S');
      const secure = new TLSSocket(client, { isServer: true, key: certificate.key, cert: certificate.cert });
      secure.on('secure', () => (tlsSessions += 1));
      const backend = connect({ host: upstream.hostname, port: Number(upstream.port || 5432) });
      backend.on('error', () => secure.destroy());
      secure.on('error', () => backend.destroy());
      secure.pipe(backend).pipe(secure);
    });
  });
  return { server, sessions: () => tlsSessions };
}

describe('TLS and authentication to the services', () => {
  let certificate: SelfSignedCertificate;
  let other: SelfSignedCertificate;
  beforeAll(() => {
    certificate = createSelfSignedCertificate();
    other = createSelfSignedCertificate();
  });
  afterAll(() => {
    for (const made of [certificate, other]) if (made !== undefined) rmSync(made.dir, { recursive: true, force: true });
  });

  describe('PostgreSQL', () => {
    it('connects over TLS with sslmode=verify-full and the CA from sslrootcert, and refuses another CA', async () => {
      const upstream = new URL(stackConfig.testDatabaseUrl);
      const proxy = postgresTlsProxy(certificate, upstream);
      const port = await listen(proxy.server);
      const through = (params: string) => {
        const url = new URL(stackConfig.testDatabaseUrl);
        url.host = `127.0.0.1:${port}`;
        return `${url.toString()}?${params}`;
      };
      try {
        const config = loadConfig({ TALLY_DATABASE_URL: through(`sslmode=verify-full&sslrootcert=${encodeURIComponent(certificate.certFile)}`) });
        const pool = createPool({ connectionString: config.database.url, max: 1, applicationName: 'tally-tls-test' });
        try {
          expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
        } finally {
          await pool.end();
        }
        expect(proxy.sessions()).toBeGreaterThanOrEqual(1);

        const wrongCa = createPool({ connectionString: through(`sslmode=verify-full&sslrootcert=${encodeURIComponent(other.certFile)}`), max: 1, applicationName: 'tally-tls-test' });
        try {
          await expect(wrongCa.query('SELECT 1')).rejects.toThrow(/certificate/i);
        } finally {
          await wrongCa.end();
        }
        // Without sslmode the client speaks plaintext, which this proxy refuses: TLS above was real.
        const plain = createPool({ connectionString: through('sslmode=disable'), max: 1, applicationName: 'tally-tls-test', connectionTimeoutMillis: 2000 });
        try {
          await expect(plain.query('SELECT 1')).rejects.toThrow();
        } finally {
          await plain.end();
        }
      } finally {
        proxy.server.close();
      }
    });

    it('connects to the local server with sslmode=require when it has ssl on', async () => {
      const probe = new pg.Client({ connectionString: stackConfig.testDatabaseUrl });
      await probe.connect();
      const { rows } = await probe.query<{ ssl: string }>('SHOW ssl');
      await probe.end();
      if (rows[0]?.ssl !== 'on') {
        // Visible on purpose: the proxy test above covers the client side; this needs the server's TLS.
        console.log('SKIPPED: the local PostgreSQL has ssl = off; direct sslmode=require not tested (see README, "TLS and authentication to the services")');
        return;
      }
      const pool = createPool({ connectionString: `${stackConfig.testDatabaseUrl}?sslmode=require&uselibpqcompat=true`, max: 1, applicationName: 'tally-tls-test' });
      try {
        const { rows: stat } = await pool.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
        expect(stat).toEqual([{ ssl: true }]);
      } finally {
        await pool.end();
      }
    });
  });

  describe('Redis', () => {
    let server: ChildProcess | undefined;
    let port: number;

    beforeAll(async () => {
      // A redis-server of the test's own, TLS only, on a free port; nothing is kept on disk.
      const free = createServer();
      port = await listen(free);
      await new Promise((resolve) => free.close(resolve));
      server = spawn(
        'redis-server',
        [
          '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1',
          '--tls-cert-file', certificate.certFile, '--tls-key-file', certificate.keyFile, '--tls-ca-cert-file', certificate.certFile,
          '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no', '--dir', certificate.dir,
        ],
        { stdio: 'ignore' },
      );
      await waitFor(async () => ((await probeTcp(`127.0.0.1:${port}`, 500)) === 'up' ? true : undefined), {
        description: 'the test redis-server listening with TLS',
        timeoutMs: 10_000,
      });
    });

    afterAll(() => {
      server?.kill();
    });

    it('connects with a rediss:// URL and TALLY_REDIS_TLS_CA_FILE, and not without the CA', async () => {
      const config = loadConfig({ TALLY_REDIS_URL: `rediss://127.0.0.1:${port}`, TALLY_REDIS_TLS_CA_FILE: certificate.certFile });
      const redis = new Redis(config.redis.url, { ...serviceConnections(config).redis, maxRetriesPerRequest: 0, lazyConnect: true });
      try {
        await redis.connect();
        expect(await redis.ping()).toBe('PONG');
      } finally {
        redis.disconnect();
      }
      const untrusting = new Redis(`rediss://127.0.0.1:${port}`, { maxRetriesPerRequest: 0, lazyConnect: true, retryStrategy: () => null });
      const errors: string[] = [];
      untrusting.on('error', (error: Error) => errors.push(error.message));
      try {
        await expect(untrusting.connect()).rejects.toThrow();
        expect(errors.join('; ')).toMatch(/certificate/i);
      } finally {
        untrusting.disconnect();
      }
    });
  });

  describe('schema registry', () => {
    it('sends basic authentication from the probe and the usage decoder', async () => {
      const seen: Array<string | undefined> = [];
      const server = createHttpServer((request, response) => {
        seen.push(request.headers.authorization);
        const ok = request.headers.authorization === `Basic ${Buffer.from('tally:registry-secret').toString('base64')}`;
        response.writeHead(ok ? (request.url?.endsWith('/subjects') ? 200 : 404) : 401, { 'content-type': 'application/json' });
        response.end(ok && request.url?.endsWith('/subjects') ? '[]' : JSON.stringify({ error_code: ok ? 40403 : 401, message: 'no' }));
      });
      const port = await listen(server);
      try {
        const config = loadConfig({
          TALLY_SCHEMA_REGISTRY_URL: `http://127.0.0.1:${port}/apis/ccompat/v7`,
          TALLY_SCHEMA_REGISTRY_USERNAME: 'tally',
          TALLY_SCHEMA_REGISTRY_PASSWORD: 'registry-secret',
        });
        const { registryAuth } = serviceConnections(config);
        expect(await probeRegistry(config.registryUrl, 2000, registryAuth)).toBe('up');
        expect(await probeRegistry(config.registryUrl, 2000)).toBe('down');

        const decoder = createUsageEventDecoder({ registryUrl: config.registryUrl, ...(registryAuth !== undefined ? { auth: registryAuth } : {}) });
        const framed = Buffer.from([0, 0, 0, 0, 7, 2, 0]);
        await expect(decoder.decode(framed)).rejects.toThrow();
        expect(seen.at(-1)).toBe(`Basic ${Buffer.from('tally:registry-secret').toString('base64')}`);
      } finally {
        server.close();
      }
    });
  });

  describe('Kafka', () => {
    /** Lists topics through one local listener, with the connection settings these variables give. */
    async function listTopicsThrough(port: string, env: Record<string, string>): Promise<string[]> {
      const config = loadConfig({ TALLY_KAFKA_BROKERS: `127.0.0.1:${port}`, ...env });
      const kafka = createKafka({ clientId: 'tally-connections-test', brokers: [...config.kafka.brokers], logLevel: logLevel.NOTHING, retry: { retries: 0 }, ...serviceConnections(config).kafka });
      const admin = kafka.admin();
      try {
        await admin.connect();
        return await admin.listTopics();
      } finally {
        await admin.disconnect();
      }
    }

    it('authenticates with SCRAM-SHA-256 on the local broker\'s SASL listener, when it has one', async () => {
      const port = process.env.TALLY_KAFKA_SASL_PORT ?? '9094';
      if ((await probeTcp(`127.0.0.1:${port}`, 1000)) === 'down') {
        // Visible on purpose: the listener takes effect on the broker's next start (scripts/lib/kafka.sh).
        console.log(`SKIPPED: no SASL listener on 127.0.0.1:${port}; restart the local broker (npm run stack:down && npm run stack:up) to add it`);
        return;
      }
      const connect = (password: string) =>
        listTopicsThrough(port, {
          TALLY_KAFKA_SASL_MECHANISM: 'scram-sha-256',
          TALLY_KAFKA_SASL_USERNAME: process.env.TALLY_KAFKA_LOCAL_SASL_USER ?? 'tally',
          TALLY_KAFKA_SASL_PASSWORD: password,
        });
      expect(Array.isArray(await connect(process.env.TALLY_KAFKA_LOCAL_SASL_PASSWORD ?? 'tally-local-sasl'))).toBe(true);
      await expect(connect('not-the-password')).rejects.toThrow();
    });

    it("speaks TLS to the local broker's TLS listener with TALLY_KAFKA_SSL_CA_FILE, and refuses an untrusted certificate", async () => {
      const port = process.env.TALLY_KAFKA_TLS_PORT ?? '9095';
      if ((await probeTcp(`127.0.0.1:${port}`, 1000)) === 'down') {
        // Visible on purpose: the listener takes effect on the broker's next start (scripts/lib/kafka.sh).
        console.log(`SKIPPED: no TLS listener on 127.0.0.1:${port}; restart the local broker (npm run stack:down && npm run stack:up) to add it`);
        return;
      }
      // The certificate scripts/lib/kafka.sh made for the listener, under the stack's TALLY_HOME.
      const caFile = path.join(process.env.TALLY_HOME ?? path.resolve(__dirname, '../../..', '.tally'), 'kafka', 'tls', 'kafka-ca.pem');
      if (!existsSync(caFile)) {
        // A broker another checkout started (the stack reuses it) keeps its certificate in that checkout's .tally.
        console.log(`SKIPPED: ${caFile} is missing; the broker on 127.0.0.1:${port} was started by another checkout, whose .tally holds its certificate`);
        return;
      }
      expect(await listTopicsThrough(port, { TALLY_KAFKA_SSL_CA_FILE: caFile })).toContain(stackConfig.usageTopic);
      // Trusting another CA (the test's own certificate) must fail the handshake: the TLS was verified.
      await expect(listTopicsThrough(port, { TALLY_KAFKA_SSL_CA_FILE: certificate.certFile })).rejects.toThrow();
    });
  });
});
