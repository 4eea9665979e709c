import path from 'node:path';
import { compile as compileTrustedProxies } from '@fastify/proxy-addr';
import { DEFAULT_PORTAL_MAX_PURCHASE_QUANTITY, parseApiKeys, type ApiKey } from '@tally/api';
import { EVENTSTOREDB_MAX_CONSUMER_BATCH_SIZE } from '@tally/event-store';
import { COMPRESSION_NAMES, registryUrlProblem, type CompressionName } from '@tally/kafka';
import { CONSUMER_KEEP_AFTER_LOAD_EVENTS, MAX_PURCHASE_QUANTITY } from '@tally/ledger';
import { DEFAULT_PROJECTOR_SNAPSHOT_CACHE_SIZE } from '@tally/projections';
import {
  DEFAULT_BALANCE_CACHE_BYTES,
  DEFAULT_BALANCE_CACHE_SIZE,
  DEFAULT_CONSUMER_BATCH_SIZE,
  DEFAULT_MAX_FETCH_BYTES,
  DEFAULT_MAX_FETCH_BYTES_PER_PARTITION,
  DEFAULT_REGISTRY_CACHE_BYTES,
  DEFAULT_SESSION_TIMEOUT_MS,
  DEFAULT_STATE_FLUSH_MS,
  MAX_CONSUMER_BATCH_SIZE,
  MAX_PARTITIONS_CONCURRENTLY,
} from '@tally/metering';
import { z } from 'zod';

export const ROLES = ['consumer', 'projector', 'api', 'relay', 'scheduler', 'webhooks'] as const;
export type Role = (typeof ROLES)[number];

export const EVENT_STORES = ['postgres', 'eventstoredb'] as const;

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

/**
 * Decimal digits only, within bounds: Number() would also take `0x1F90`, `8e3` or `1.0`, and a
 * blank value (now unset, see loadConfig) would have been 0.
 */
const wholeNumber = (min: number, max: number) =>
  z.string().trim().regex(/^[0-9]+$/, 'a whole number in decimal digits').transform(Number).pipe(z.number().min(min).max(max));

const integer = (fallback: number, min: number, max: number) => wholeNumber(min, max).default(String(fallback));

const text = (fallback: string) => z.string().trim().min(1).default(fallback);

/**
 * Every variable the main job and the CLI read: type, default and description, defined here once.
 * README.md's tables, scripts/lib/env.sh, test/support's stackConfig and docker-compose.yml are
 * checked against it (configSources.unit.spec.ts).
 */
export const configSchema = z.object({
  TALLY_HOME: text(path.join(REPO_ROOT, '.tally')).describe('logs, data, downloaded artifacts and pid files of the local stack'),
  TALLY_ROLES: text(ROLES.join(',')).describe('roles the main job runs in this process'),
  TALLY_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info')
    .describe('pino level of the main job and the CLI (`warn` for the CLI when unset; the CLI logs to stderr, its answers alone on stdout)'),
  TALLY_KAFKA_BROKERS: z.string().trim().min(1)
    .refine((list) => list.split(',').every((broker) => broker.trim() !== ''), 'an empty entry in the list (a stray comma?); give host:port entries separated by commas')
    .default('127.0.0.1:9092').describe('Kafka bootstrap servers, comma-separated; the local broker listens on the first'),
  TALLY_KAFKA_CLIENT_ID: text('tally').describe('kafkajs client id (the relay appends `-relay`, the HTTP ingestion\'s producer `-ingest`)'),
  TALLY_KAFKA_COMPRESSION: z.enum(COMPRESSION_NAMES).default('none')
    .describe('codec of what Tally produces: dead letters, the ledger topic, HTTP-ingested usage, `tally send`; `none`, `gzip`, `snappy`, `lz4` or `zstd` (consumers read every codec whatever this is)'),
  // The registry's one rule (@tally/kafka): an http(s) URL, its credentials in their variables.
  TALLY_SCHEMA_REGISTRY_URL: z.string()
    .superRefine((text, context) => {
      const problem = registryUrlProblem(text, 'TALLY_SCHEMA_REGISTRY_USERNAME and TALLY_SCHEMA_REGISTRY_PASSWORD');
      if (problem !== undefined) context.addIssue({ code: z.ZodIssueCode.custom, message: problem });
    })
    .default('http://127.0.0.1:8081/apis/ccompat/v7')
    .describe('Confluent-compatible schema registry API; the local registry listens on its host and port'),
  TALLY_DATABASE_URL: z.string().url().default('postgres://postgres@127.0.0.1:5432/tally')
    .describe('Tally\'s database; `stack:up` creates and migrates it'),
  TALLY_DATABASE_SCHEMA: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/).default('public')
    .describe('PostgreSQL schema the migrations and Tally use'),
  TALLY_DATABASE_POOL_SIZE: integer(10, 1, 200).describe('PostgreSQL connections per process for its work; each lease it holds or tries for (one per leading role) and its notification listener open one more of their own'),
  TALLY_EVENT_STORE: z.enum(EVENT_STORES).default('postgres')
    .describe('where the ledger\'s events are kept: `postgres` (Tally\'s database) or `eventstoredb` (the server at `TALLY_EVENTSTORE_CONNECTION_STRING`)'),
  TALLY_EVENTSTORE_CONNECTION_STRING: text('esdb://127.0.0.1:2113?tls=false')
    .describe('EventStoreDB or KurrentDB (22.6 or later) when `TALLY_EVENT_STORE=eventstoredb`: `esdb://` or `esdb+discover://`; docker-compose.yml\'s server by default'),
  TALLY_REDIS_URL: z.string().url().default('redis://127.0.0.1:6379').describe('Redis for balance snapshots; run it with `maxmemory-policy noeviction`: an evicted checkpoint reads as a lost projection and every snapshot is rebuilt'),
  TALLY_REDIS_KEY_PREFIX: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, '1 to 64 of the characters A-Z a-z 0-9 _ . : - (no cluster hash tag: Tally\'s Redis client is not a cluster client)').default('tally')
    .describe('root of every Redis key of the balance snapshots'),
  TALLY_USAGE_TOPIC: text('usage-events').describe('topic of usage events'),
  TALLY_DLQ_TOPIC: text('usage-events.dlq').describe('dead-letter topic of usage events'),
  TALLY_LEDGER_TOPIC: text('credit-ledger').describe('topic of ledger events'),
  TALLY_CONSUMER_GROUP: text('tally-metering').describe('consumer group of the metering consumer'),
  TALLY_CONSUMER_PARTITIONS_CONCURRENTLY: wholeNumber(1, MAX_PARTITIONS_CONCURRENTLY).optional()
    .describe(
      "partitions one consumer process meters at once (each stays in order; the others wait for a turn): two keep it deciding one chunk while PostgreSQL appends another, more only queue at the event store's commit-order lock and keep more chunks in memory (docs/benchmarks.md, 2026-12-03 late night); more consumer processes use more cores",
    ),
  TALLY_CONSUMER_BATCH_SIZE: integer(DEFAULT_CONSUMER_BATCH_SIZE, 1, MAX_CONSUMER_BATCH_SIZE)
    .describe('most usage events the consumer decides and appends together (a chunk); a larger Kafka fetch is split into chunks'),
  // Bounded memory (issue 11 §6): what a fetch may bring, and how many balances stay in memory.
  TALLY_CONSUMER_MAX_FETCH_BYTES: integer(DEFAULT_MAX_FETCH_BYTES, 1024, 1024 ** 3)
    .describe('most bytes one Kafka fetch brings the consumer from a broker (kafkajs `maxBytes`)'),
  TALLY_CONSUMER_MAX_FETCH_BYTES_PER_PARTITION: integer(DEFAULT_MAX_FETCH_BYTES_PER_PARTITION, 1024, 1024 ** 3)
    .describe('most bytes it brings from one partition (kafkajs `maxBytesPerPartition`; a larger record batch is still fetched, alone)'),
  TALLY_CONSUMER_REGISTRY_CACHE_SIZE: integer(100_000, 1, 10_000_000)
    .describe("customers whose list of balances a process keeps in memory, for the consumer's metering and the API's usage lookups (one cache per process), dropped on change through `LISTEN`/`NOTIFY`"),
  TALLY_CONSUMER_BALANCE_CACHE_SIZE: integer(DEFAULT_BALANCE_CACHE_SIZE, 1, 10_000_000)
    .describe('balances whose state the consumer keeps in memory, least recently used leaving first'),
  // The byte bounds are what bound memory (entries differ in size); both bounds apply, the first reached wins.
  TALLY_CONSUMER_REGISTRY_CACHE_BYTES: integer(DEFAULT_REGISTRY_CACHE_BYTES, 64 * 1024, 64 * 1024 ** 3)
    .describe('estimated bytes those customers\' lists may take (a conservative estimate of their heap size)'),
  TALLY_CONSUMER_BALANCE_CACHE_BYTES: integer(DEFAULT_BALANCE_CACHE_BYTES, 64 * 1024, 64 * 1024 ** 3)
    .describe('estimated bytes those balances\' states may take (a conservative estimate of their heap size)'),
  // Kafka's group.min.session.timeout.ms is 6 s by default; a lower value is refused at join.
  TALLY_CONSUMER_SESSION_TIMEOUT_MS: integer(DEFAULT_SESSION_TIMEOUT_MS, 6_000, 300_000)
    .describe('how long a crashed consumer keeps its partitions before the group hands them to the others (6,000 at least, the broker\'s minimum)'),
  TALLY_CONSUMER_STATE_FLUSH_MS: integer(DEFAULT_STATE_FLUSH_MS, 10, 3_600_000)
    .describe(`how often the consumer keeps a stored state of each balance it wrote ${CONSUMER_KEEP_AFTER_LOAD_EVENTS} events or more to since its last one (write-behind; at a graceful stop, of every balance it wrote), so that the next consumer to meet it folds only what came after`),
  TALLY_PROJECTOR_SNAPSHOT_CACHE_SIZE: integer(DEFAULT_PROJECTOR_SNAPSHOT_CACHE_SIZE, 0, 10_000_000)
    .describe('balances the projector keeps folded in memory (about 600 bytes each), so a batch is written without reading them back from Redis; at least the balances written in turn, or every batch misses; 0 reads each batch\'s balances from Redis'),
  TALLY_CATALOG_REFRESH_MS: integer(2000, 100, 600_000)
    .describe('how often the consumer reloads credit products (catalog changes apply within this)'),
  TALLY_API_HOST: text('127.0.0.1').describe('address the API listens on (a process without the `api` role serves `/health` and `/metrics` there)'),
  TALLY_API_PORT: integer(8080, 0, 65535).describe('its port'),
  TALLY_API_KEYS: z.string().optional()
    .describe('bearer keys, their scopes and names, `key[:scope[+scope][:name]]` comma-separated, each key at least 16 characters; see [The API under hostile clients](#the-api-under-hostile-clients)'),
  TALLY_SESSION_SECRET: z.string().min(32).optional()
    .describe('signs console sessions and portal links (HS256), at least 32 characters, the same for every API process'),
  TALLY_CONSOLE_SESSION_TTL_MS: integer(8 * 3_600_000, 60_000, 7 * 86_400_000).describe('how long a console sign-in lasts'),
  TALLY_PORTAL_LINK_TTL_MS: integer(3_600_000, 60_000, 30 * 86_400_000).describe('how long a customer portal link admits its customer'),
  TALLY_PORTAL_MAX_PURCHASE_QUANTITY: integer(DEFAULT_PORTAL_MAX_PURCHASE_QUANTITY, 1, MAX_PURCHASE_QUANTITY)
    .describe('bundles a portal link may buy in one purchase, or set auto-recharge to buy each time (a leaked link buys no more); API keys are not limited by it'),
  TALLY_PUBLIC_URL: z.string()
    .refine(isHttpOrigin, 'an origin such as `https://billing.example.com`: http or https, no path, query or fragment')
    .optional()
    .describe('the origin customers reach Tally at, e.g. `https://billing.example.com`; portal links are built on it (unset: the scheme and host each request came in on)'),
  TALLY_SCHEDULER_INTERVAL_MS: integer(10_000, 100, 3_600_000).describe('pause between the grant scheduler\'s runs'),
  // The API under hostile clients: timeouts, a connection cap, rate limits (per minute by default).
  TALLY_API_REQUEST_TIMEOUT_MS: integer(30_000, 0, 600_000).describe('the whole request (0: no limit)'),
  TALLY_API_HEADERS_TIMEOUT_MS: integer(10_000, 1_000, 600_000)
    .describe('a request\'s headers must arrive within this; else `408` and the connection is closed'),
  TALLY_API_BODY_TIMEOUT_MS: integer(10_000, 0, 600_000)
    .describe('its body must arrive within this once admitted (0: no limit); else `408 request_timeout`'),
  TALLY_API_CONNECTION_TIMEOUT_MS: integer(30_000, 1_000, 3_600_000).describe('a connection with nothing sent either way is closed'),
  TALLY_API_KEEP_ALIVE_TIMEOUT_MS: integer(5_000, 1_000, 600_000).describe('an idle keep-alive connection is closed'),
  TALLY_API_MAX_CONNECTIONS: integer(1024, 1, 1_000_000).describe('connections one process holds; more are closed as they arrive'),
  TALLY_API_RATE_LIMIT_WINDOW_MS: integer(60_000, 1_000, 3_600_000).describe('the window every limit counts in'),
  TALLY_API_RATE_LIMIT_PER_KEY: integer(60_000, 0, 100_000_000)
    .describe('requests per window per key (1,000 a second); `0` turns all limits off'),
  TALLY_API_RATE_LIMIT_PER_ADDRESS: integer(1_200, 1, 100_000_000)
    .describe('requests per window per client address to the routes that take no key: `/health`, `/metrics`, `/docs`, `/console`, `/portal`, `/ui/*`, `POST /v1/console-sessions`'),
  TALLY_API_RATE_LIMIT_FAILED_AUTH: integer(60, 1, 100_000_000)
    .describe('requests without a valid key per window per address, to everything else: guessing keys is slow'),
  TALLY_API_RATE_LIMIT_SYNC_MS: integer(100, 0, 60_000).describe(
    "how often each API process adds its per-key counts to Redis; a keyed request is then admitted without waiting on Redis, and across processes a key's limit holds to within what the others admitted in one interval; `0` counts every keyed request in Redis first (exact across processes)",
  ),
  TALLY_API_HEALTH_INTERVAL_MS: integer(5_000, 500, 600_000)
    .describe('how often `/health`\'s state is refreshed in the background (one check in flight at most)'),
  // No hop count: trusting "the last N hops" trusts whoever connects directly as well, so a
  // client that reaches the API past its proxy names any address it likes (Fastify 5.12 dropped it).
  TALLY_API_TRUST_PROXY: z.string().trim().min(1)
    .refine((text) => !/^[0-9]+$/.test(text), 'a hop count trusts any client that connects directly; name the proxies\' addresses or CIDR ranges')
    .superRefine((text, context) => {
      const problem = trustProxyProblem(text);
      if (problem !== undefined) context.addIssue({ code: z.ZodIssueCode.custom, message: problem });
    })
    .optional()
    .describe('proxies whose `X-Forwarded-For` names the client: `true`, or their addresses and CIDR ranges'),
  // TLS and authentication to the services (README, "TLS and authentication to the services").
  TALLY_KAFKA_SSL: z.enum(['true', 'false']).default('false').describe('TLS to the brokers, trusting the system\'s CAs'),
  TALLY_KAFKA_SSL_CA_FILE: z.string().min(1).optional().describe('a CA (PEM) to trust instead; implies `TALLY_KAFKA_SSL=true`'),
  TALLY_KAFKA_SASL_MECHANISM: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']).optional()
    .describe('`plain`, `scram-sha-256` or `scram-sha-512`'),
  TALLY_KAFKA_SASL_USERNAME: z.string().min(1).optional().describe('the SASL account; all three SASL variables together or none'),
  TALLY_KAFKA_SASL_PASSWORD: z.string().min(1).optional().describe('the SASL account; all three SASL variables together or none'),
  TALLY_SCHEMA_REGISTRY_USERNAME: z.string().min(1).optional()
    .describe('HTTP basic authentication to the registry (consumer, relay, health probe)'),
  TALLY_SCHEMA_REGISTRY_PASSWORD: z.string().min(1).optional()
    .describe('HTTP basic authentication to the registry (consumer, relay, health probe)'),
  TALLY_REDIS_TLS_CA_FILE: z.string().min(1).optional()
    .describe('a CA (PEM) for Redis\'s certificate instead of the system\'s; needs `rediss://`'),
  // Bounds on every wait (issue 10 §5); README.md's table says what each one bounds.
  TALLY_SHUTDOWN_TIMEOUT_MS: integer(15_000, 100, 600_000)
    .describe('from `SIGTERM`, `SIGINT` or `SIGHUP` to exit: what has not stopped by then is abandoned (exit 1) and its uncommitted work redelivered'),
  TALLY_DATABASE_STATEMENT_TIMEOUT_MS: integer(30_000, 100, 3_600_000)
    .describe('PostgreSQL `statement_timeout` of every connection; the client abandons a query 2 s after it'),
  TALLY_DATABASE_CONNECT_TIMEOUT_MS: integer(10_000, 100, 600_000).describe('how long opening a PostgreSQL connection may take'),
  TALLY_REDIS_COMMAND_TIMEOUT_MS: integer(5_000, 100, 600_000)
    .describe('how long a Redis command may wait for its reply, queued time included'),
  TALLY_RELAY_LEASE_TIMEOUT_MS: integer(5_000, 100, 600_000)
    .describe('how long the relay\'s lease heartbeat may go unanswered before the relay stops publishing'),
  TALLY_BALANCE_LOAD_BUDGET_MS: integer(10_000, 1, 600_000)
    .describe('how long a balance write, or a read of a balance the read model lacks, may wait for the balance\'s state to load (a long history folded) before it answers `503 balance_loading` with `Retry-After`; the fold goes on and is kept, so the retry is fast; below `TALLY_API_REQUEST_TIMEOUT_MS`'),
  TALLY_SCHEDULER_MAX_PERIODS_PER_RUN: integer(100, 1, 100_000)
    .describe('periods one scheduler run grants per subscription; a subscription further behind is caught up over several runs, which then follow each other at once'),
  TALLY_SUBSCRIPTION_INLINE_GRANT_PERIODS: integer(12, 0, 10_000)
    .describe('periods of backlog (before each product\'s current one) a create or cancel request grants before it answers, with the current period besides; the scheduler grants the rest; `0` leaves every grant to the scheduler'),
  // Webhooks (README, "Webhooks"): where they may go, how long a receiver may take, how long they are retried.
  TALLY_WEBHOOKS_ALLOW_PRIVATE_NETWORKS: z.enum(['true', 'false']).default('false')
    .describe('`true` lets webhook endpoints resolve to loopback, private, link-local and metadata addresses (a receiver on this host, tests); refused otherwise'),
  TALLY_WEBHOOKS_CONNECT_TIMEOUT_MS: integer(5_000, 100, 120_000).describe('how long connecting to a webhook receiver may take'),
  TALLY_WEBHOOKS_RESPONSE_TIMEOUT_MS: integer(15_000, 100, 600_000)
    .describe('how long a webhook receiver may take to answer once connected; slower counts as a failed attempt'),
  TALLY_WEBHOOKS_RETRY_INITIAL_DELAY_MS: integer(5_000, 1, 86_400_000)
    .describe('ceiling of the pause after a webhook\'s first failed attempt: the pause is between half of it and it (2.5–5 s by default); the ceiling doubles after each further one'),
  TALLY_WEBHOOKS_RETRY_MAX_DELAY_MS: integer(3_600_000, 1, 86_400_000).describe('longest pause between two attempts of a webhook'),
  TALLY_WEBHOOKS_RETRY_FOR_MS: integer(259_200_000, 1, 2_592_000_000)
    .describe('how long a webhook is retried from its first attempt (3 days); then it is given up and its endpoint disabled with the reason'),
  TALLY_WEBHOOKS_SECRET_GRACE_MS: integer(86_400_000, 0, 2_592_000_000)
    .describe('how long a rotated-out webhook secret still signs (beside the new one), so receivers can switch'),
  TALLY_WEBHOOKS_CONCURRENCY: integer(8, 1, 1_000).describe('webhooks in flight at once (each to a different endpoint and balance)'),
  TALLY_WEBHOOKS_POLL_MS: integer(1_000, 10, 600_000).describe('how often the deliverer looks for webhooks to send, new ones and retries come due (at once again while it finds some)'),
  TALLY_WEBHOOKS_RETAIN_DELIVERED_MS: integer(2_592_000_000, 60_000, 31_536_000_000)
    .describe('how long a delivered webhook and its attempts are kept (listed, retried by hand) before they are deleted; pending and given-up ones are kept until sent'),
});

export interface Config {
  readonly home: string;
  readonly roles: ReadonlySet<Role>;
  readonly logLevel: string;
  readonly kafka: {
    readonly brokers: readonly string[];
    readonly clientId: string;
    /** Codec of what Tally itself produces (dead letters, ledger topic, HTTP-ingested usage). */
    readonly compression: CompressionName;
  };
  readonly registryUrl: string;
  readonly database: { readonly url: string; readonly schema: string; readonly poolSize: number };
  /** The event store; PostgreSQL stays Tally's database (catalog, checkpoints) either way. */
  readonly eventStore: { readonly kind: 'postgres' } | { readonly kind: 'eventstoredb'; readonly connectionString: string };
  readonly redis: { readonly url: string; readonly keyPrefix: string };
  readonly projector: { readonly snapshotCacheSize: number };
  readonly topics: { readonly usage: string; readonly deadLetter: string; readonly ledger: string };
  readonly consumer: {
    readonly groupId: string;
    /** Undefined: every partition of the usage topic. */
    readonly partitionsConsumedConcurrently: number | undefined;
    /** Usage events decided and appended together. */
    readonly batchSize: number;
    readonly maxFetchBytes: number;
    readonly maxFetchBytesPerPartition: number;
    readonly balanceCacheSize: number;
    /** Estimated bytes of the balance states cache. */
    readonly balanceCacheBytes: number;
    /** Customers in the consumer's balance registry cache. */
    readonly registryCacheSize: number;
    readonly registryCacheBytes: number;
    readonly sessionTimeoutMs: number;
    /** How often the consumer keeps the stored states of the balances it wrote (write-behind). */
    readonly stateFlushMs: number;
  };
  readonly catalogRefreshMs: number;
  readonly api: { readonly host: string; readonly port: number; readonly keys: readonly ApiKey[] | undefined };
  /** The console and the portal; without a secret the main job keeps one in `home`. */
  readonly web: {
    readonly sessionSecret: string | undefined;
    readonly sessionTtlMs: number;
    readonly portalLinkTtlMs: number;
    readonly portalMaxPurchaseQuantity: number;
    readonly publicUrl: string | undefined;
  };
  /** TLS and authentication to Kafka, the registry and Redis; PostgreSQL's are in its URL (`sslmode`, `sslrootcert`). */
  readonly connections: {
    readonly kafka: {
      /** TLS to the brokers; with `caFile`, trusting that CA (PEM) instead of the system's. */
      readonly ssl: boolean;
      readonly caFile: string | undefined;
      readonly sasl: { readonly mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; readonly username: string; readonly password: string } | undefined;
    };
    readonly registryAuth: { readonly username: string; readonly password: string } | undefined;
    /** CA (PEM) for a `rediss://` URL's certificate, instead of the system's. */
    readonly redisCaFile: string | undefined;
  };
  /** How the API protects itself from slow, numerous or over-curious clients (README, "The API under hostile clients"). */
  readonly apiProtection: {
    readonly requestTimeoutMs: number;
    readonly headersTimeoutMs: number;
    readonly bodyTimeoutMs: number;
    readonly connectionTimeoutMs: number;
    readonly keepAliveTimeoutMs: number;
    readonly maxConnections: number;
    readonly healthIntervalMs: number;
    /** Proxies whose X-Forwarded-For names the client: true, or addresses/CIDRs; undefined for none. */
    readonly trustProxy: boolean | readonly string[] | undefined;
    readonly rateLimit: { readonly windowMs: number; readonly perKey: number; readonly perAddress: number; readonly failedAuthPerAddress: number; readonly syncMs: number };
  };
  readonly schedulerIntervalMs: number;
  readonly timeouts: {
    /** From SIGTERM to exit, whatever is still stopping. */
    readonly shutdownMs: number;
    readonly databaseStatementMs: number;
    readonly databaseConnectMs: number;
    readonly redisCommandMs: number;
    readonly relayLeaseMs: number;
    /** How long a balance write waits for its balance's state before answering balance_loading. */
    readonly balanceLoadMs: number;
  };
  readonly webhooks: {
    readonly allowPrivateNetworks: boolean;
    readonly connectTimeoutMs: number;
    readonly responseTimeoutMs: number;
    readonly retry: { readonly initialDelayMs: number; readonly maxDelayMs: number; readonly retryForMs: number };
    readonly secretGraceMs: number;
    readonly concurrency: number;
    readonly pollMs: number;
    readonly retainDeliveredMs: number;
  };
  readonly grants: {
    /** Periods one scheduler run grants per subscription item; the next run continues. */
    readonly maxPeriodsPerRun: number;
    /** Periods a create or cancel request grants itself; the scheduler grants the rest. */
    readonly inlinePeriods: number;
  };
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

function deepFreeze<T extends object>(value: T): T {
  for (const inner of Object.values(value)) {
    if (inner !== null && typeof inner === 'object' && !(inner instanceof Set)) deepFreeze(inner as object);
  }
  return Object.freeze(value);
}

/** An http(s) URL naming no more than scheme, host and port (a trailing slash allowed). */
function isHttpOrigin(text: string): boolean {
  if (!URL.canParse(text) || /[?#]/.test(text)) return false;
  const url = new URL(text);
  return (url.protocol === 'http:' || url.protocol === 'https:') && url.pathname === '/' && url.username === '' && url.password === '';
}

/** `true`, or a comma-separated list of proxy addresses and CIDR ranges. */
function trustProxyOf(text: string | undefined): boolean | string[] | undefined {
  if (text === undefined || text === 'false') return undefined;
  if (text === 'true') return true;
  return text.split(',').map((entry) => entry.trim());
}

/**
 * Why Fastify would refuse the list, found now rather than when it builds the server: the same
 * compile it runs (@fastify/proxy-addr), so both accept the same addresses, ranges and names
 * (`loopback`, `linklocal`, `uniquelocal`).
 */
function trustProxyProblem(text: string): string | undefined {
  const list = trustProxyOf(text);
  if (!Array.isArray(list)) return undefined;
  if (list.includes('')) return 'an empty entry in the list (a stray comma?)';
  try {
    compileTrustedProxies(list);
    return undefined;
  } catch (error) {
    return `\`true\`, \`false\` or proxy addresses and CIDR ranges separated by commas: ${(error as Error).message}`;
  }
}

/** Turns the environment into a validated, frozen Config; a bad value stops start-up with its name. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // One rule for every variable: set to nothing (or only spaces) is unset, as in the shell's
  // `${NAME:-default}` the scripts use; otherwise `TALLY_API_PORT=` would be port 0, a random one.
  const given = Object.fromEntries(
    Object.keys(configSchema.shape).flatMap((name) => {
      const value = env[name];
      return value === undefined || value.trim() === '' ? [] : [[name, value]];
    }),
  );
  const parsed = configSchema.safeParse(given);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ');
    throw new ConfigError(`invalid configuration: ${problems}`);
  }
  const e = parsed.data;
  const roles = e.TALLY_ROLES.split(',').map((role) => role.trim()).filter(Boolean);
  const unknown = roles.filter((role) => !(ROLES as readonly string[]).includes(role));
  if (unknown.length > 0 || roles.length === 0) {
    throw new ConfigError(`TALLY_ROLES: unknown role(s) ${unknown.join(', ') || '(none given)'}; use ${ROLES.join(',')}`);
  }
  let keys: ApiKey[] | undefined;
  try {
    keys = e.TALLY_API_KEYS === undefined ? undefined : parseApiKeys(e.TALLY_API_KEYS);
  } catch (error) {
    // parseApiKeys names a key by its place in the list, never by its text.
    throw new ConfigError(`TALLY_API_KEYS: ${(error as Error).message}`);
  }
  if (keys !== undefined && keys.length === 0) {
    // Set but holding no key (`,`): a mistake, never a request for the local key the main job makes when it is unset.
    throw new ConfigError('TALLY_API_KEYS: holds no key; give key[:scope[+scope][:name]] entries separated by commas, or unset it for the local key');
  }
  const sasl = e.TALLY_KAFKA_SASL_MECHANISM;
  if ((sasl !== undefined) !== (e.TALLY_KAFKA_SASL_USERNAME !== undefined && e.TALLY_KAFKA_SASL_PASSWORD !== undefined)) {
    throw new ConfigError('TALLY_KAFKA_SASL_MECHANISM, TALLY_KAFKA_SASL_USERNAME and TALLY_KAFKA_SASL_PASSWORD go together: set all three or none');
  }
  if ((e.TALLY_SCHEMA_REGISTRY_USERNAME === undefined) !== (e.TALLY_SCHEMA_REGISTRY_PASSWORD === undefined)) {
    throw new ConfigError('TALLY_SCHEMA_REGISTRY_USERNAME and TALLY_SCHEMA_REGISTRY_PASSWORD go together');
  }
  if (e.TALLY_EVENT_STORE === 'eventstoredb' && !/^esdb(\+discover)?:\/\/[^/?]/.test(e.TALLY_EVENTSTORE_CONNECTION_STRING)) {
    // Not the value itself in the message: it may hold a password.
    throw new ConfigError('TALLY_EVENTSTORE_CONNECTION_STRING: not an EventStoreDB connection string; it starts with esdb:// or esdb+discover:// and names a host');
  }
  if (e.TALLY_EVENT_STORE === 'eventstoredb' && e.TALLY_CONSUMER_BATCH_SIZE > EVENTSTOREDB_MAX_CONSUMER_BATCH_SIZE) {
    // A chunk's journal entry must fit one EventStoreDB append; a larger chunk would be refused whole.
    throw new ConfigError(
      `TALLY_CONSUMER_BATCH_SIZE: at most ${EVENTSTOREDB_MAX_CONSUMER_BATCH_SIZE} on EventStoreDB, whose journal entry for a chunk must fit one append`,
    );
  }
  if (e.TALLY_API_REQUEST_TIMEOUT_MS > 0 && e.TALLY_BALANCE_LOAD_BUDGET_MS >= e.TALLY_API_REQUEST_TIMEOUT_MS) {
    // A budget past the request timeout would let the server cut the client off before it answers.
    throw new ConfigError('TALLY_BALANCE_LOAD_BUDGET_MS must be below TALLY_API_REQUEST_TIMEOUT_MS, so a write is answered before the request times out');
  }
  if (e.TALLY_REDIS_TLS_CA_FILE !== undefined && !e.TALLY_REDIS_URL.startsWith('rediss://')) {
    throw new ConfigError('TALLY_REDIS_TLS_CA_FILE is for TLS: TALLY_REDIS_URL must then start with rediss://');
  }
  return deepFreeze({
    connections: {
      kafka: {
        ssl: e.TALLY_KAFKA_SSL === 'true' || e.TALLY_KAFKA_SSL_CA_FILE !== undefined,
        caFile: e.TALLY_KAFKA_SSL_CA_FILE,
        sasl:
          sasl === undefined ? undefined : { mechanism: sasl, username: e.TALLY_KAFKA_SASL_USERNAME!, password: e.TALLY_KAFKA_SASL_PASSWORD! },
      },
      registryAuth:
        e.TALLY_SCHEMA_REGISTRY_USERNAME === undefined
          ? undefined
          : { username: e.TALLY_SCHEMA_REGISTRY_USERNAME, password: e.TALLY_SCHEMA_REGISTRY_PASSWORD! },
      redisCaFile: e.TALLY_REDIS_TLS_CA_FILE,
    },
    home: e.TALLY_HOME,
    roles: new Set(roles as Role[]),
    logLevel: e.TALLY_LOG_LEVEL,
    kafka: {
      brokers: e.TALLY_KAFKA_BROKERS.split(',').map((broker) => broker.trim()),
      clientId: e.TALLY_KAFKA_CLIENT_ID,
      compression: e.TALLY_KAFKA_COMPRESSION,
    },
    registryUrl: e.TALLY_SCHEMA_REGISTRY_URL,
    database: { url: e.TALLY_DATABASE_URL, schema: e.TALLY_DATABASE_SCHEMA, poolSize: e.TALLY_DATABASE_POOL_SIZE },
    eventStore:
      e.TALLY_EVENT_STORE === 'postgres' ? { kind: 'postgres' } : { kind: 'eventstoredb', connectionString: e.TALLY_EVENTSTORE_CONNECTION_STRING },
    redis: { url: e.TALLY_REDIS_URL, keyPrefix: e.TALLY_REDIS_KEY_PREFIX },
    projector: { snapshotCacheSize: e.TALLY_PROJECTOR_SNAPSHOT_CACHE_SIZE },
    topics: { usage: e.TALLY_USAGE_TOPIC, deadLetter: e.TALLY_DLQ_TOPIC, ledger: e.TALLY_LEDGER_TOPIC },
    consumer: {
      groupId: e.TALLY_CONSUMER_GROUP,
      partitionsConsumedConcurrently: e.TALLY_CONSUMER_PARTITIONS_CONCURRENTLY,
      batchSize: e.TALLY_CONSUMER_BATCH_SIZE,
      maxFetchBytes: e.TALLY_CONSUMER_MAX_FETCH_BYTES,
      maxFetchBytesPerPartition: e.TALLY_CONSUMER_MAX_FETCH_BYTES_PER_PARTITION,
      balanceCacheSize: e.TALLY_CONSUMER_BALANCE_CACHE_SIZE,
      balanceCacheBytes: e.TALLY_CONSUMER_BALANCE_CACHE_BYTES,
      registryCacheSize: e.TALLY_CONSUMER_REGISTRY_CACHE_SIZE,
      registryCacheBytes: e.TALLY_CONSUMER_REGISTRY_CACHE_BYTES,
      sessionTimeoutMs: e.TALLY_CONSUMER_SESSION_TIMEOUT_MS,
      stateFlushMs: e.TALLY_CONSUMER_STATE_FLUSH_MS,
    },
    catalogRefreshMs: e.TALLY_CATALOG_REFRESH_MS,
    api: { host: e.TALLY_API_HOST, port: e.TALLY_API_PORT, keys },
    web: {
      sessionSecret: e.TALLY_SESSION_SECRET,
      sessionTtlMs: e.TALLY_CONSOLE_SESSION_TTL_MS,
      portalLinkTtlMs: e.TALLY_PORTAL_LINK_TTL_MS,
      portalMaxPurchaseQuantity: e.TALLY_PORTAL_MAX_PURCHASE_QUANTITY,
      publicUrl: e.TALLY_PUBLIC_URL === undefined ? undefined : new URL(e.TALLY_PUBLIC_URL).origin,
    },
    schedulerIntervalMs: e.TALLY_SCHEDULER_INTERVAL_MS,
    apiProtection: {
      requestTimeoutMs: e.TALLY_API_REQUEST_TIMEOUT_MS,
      headersTimeoutMs: e.TALLY_API_HEADERS_TIMEOUT_MS,
      bodyTimeoutMs: e.TALLY_API_BODY_TIMEOUT_MS,
      connectionTimeoutMs: e.TALLY_API_CONNECTION_TIMEOUT_MS,
      keepAliveTimeoutMs: e.TALLY_API_KEEP_ALIVE_TIMEOUT_MS,
      maxConnections: e.TALLY_API_MAX_CONNECTIONS,
      healthIntervalMs: e.TALLY_API_HEALTH_INTERVAL_MS,
      trustProxy: trustProxyOf(e.TALLY_API_TRUST_PROXY),
      rateLimit: {
        windowMs: e.TALLY_API_RATE_LIMIT_WINDOW_MS,
        perKey: e.TALLY_API_RATE_LIMIT_PER_KEY,
        perAddress: e.TALLY_API_RATE_LIMIT_PER_ADDRESS,
        failedAuthPerAddress: e.TALLY_API_RATE_LIMIT_FAILED_AUTH,
        syncMs: e.TALLY_API_RATE_LIMIT_SYNC_MS,
      },
    },
    timeouts: {
      shutdownMs: e.TALLY_SHUTDOWN_TIMEOUT_MS,
      databaseStatementMs: e.TALLY_DATABASE_STATEMENT_TIMEOUT_MS,
      databaseConnectMs: e.TALLY_DATABASE_CONNECT_TIMEOUT_MS,
      redisCommandMs: e.TALLY_REDIS_COMMAND_TIMEOUT_MS,
      relayLeaseMs: e.TALLY_RELAY_LEASE_TIMEOUT_MS,
      balanceLoadMs: e.TALLY_BALANCE_LOAD_BUDGET_MS,
    },
    webhooks: {
      allowPrivateNetworks: e.TALLY_WEBHOOKS_ALLOW_PRIVATE_NETWORKS === 'true',
      connectTimeoutMs: e.TALLY_WEBHOOKS_CONNECT_TIMEOUT_MS,
      responseTimeoutMs: e.TALLY_WEBHOOKS_RESPONSE_TIMEOUT_MS,
      retry: {
        initialDelayMs: e.TALLY_WEBHOOKS_RETRY_INITIAL_DELAY_MS,
        maxDelayMs: e.TALLY_WEBHOOKS_RETRY_MAX_DELAY_MS,
        retryForMs: e.TALLY_WEBHOOKS_RETRY_FOR_MS,
      },
      secretGraceMs: e.TALLY_WEBHOOKS_SECRET_GRACE_MS,
      concurrency: e.TALLY_WEBHOOKS_CONCURRENCY,
      pollMs: e.TALLY_WEBHOOKS_POLL_MS,
      retainDeliveredMs: e.TALLY_WEBHOOKS_RETAIN_DELIVERED_MS,
    },
    grants: {
      maxPeriodsPerRun: e.TALLY_SCHEDULER_MAX_PERIODS_PER_RUN,
      inlinePeriods: e.TALLY_SUBSCRIPTION_INLINE_GRANT_PERIODS,
    },
  });
}
