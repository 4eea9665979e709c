import { createBalanceReadModel, createBalanceProjector, createRedisClient } from '@tally/projections';
import { buildApp, RATE_LIMIT_REDIS_CLIENT, type ApiKey } from '@tally/api';
import { createMetricsRegistry } from '@tally/metrics';
import { createPostgresCheckpointStore, createWorkerGroup, readProcessorStatus, withDeadline } from '@tally/runtime';
import { createCatalogCache, createPostgresCatalogStore } from '@tally/catalog';
import {
  createBalanceRegistryCache,
  createBalanceStates,
  createUsageBalanceWrites,
  createConsumptionProjector,
  createHoldExpiryWorker,
  createLedgerService,
  createPostgresBalanceRegistry,
  createPostgresBalanceStateStore,
  createPostgresConsumptionStore,
  createPostgresCustomerDirectory,
  createPostgresHoldExpiryIndex,
  createPostgresStatementStarts,
  createPurchaseService,
  createAutoRecharges,
  createAutoRechargeProcessor,
} from '@tally/ledger';
import { compressionType } from '@tally/kafka';
import { createLedgerRelay, ledgerRelayCheckpointName } from '@tally/ledger-relay';
import {
  CONSUMER_MAX_OLD_SPACE_MIB,
  CONSUMER_MAX_SEMI_SPACE_MIB,
  CONSUMER_NODE_OPTIONS,
  createDeadLetterLog,
  createDeadLetterReader,
  createDeadLetterRedrives,
  createDeadLetterRecorder,
  createUsageConsumer,
  createUsageEventDecoder,
  createUsagePublisher,
  type StalledPartition,
} from '@tally/metering';
import { migrate } from '@tally/postgres';
import {
  createGrantScheduler,
  createPostgresPlanStore,
  createPostgresSubscriptionStore,
  createSubscriptionService,
} from '@tally/subscriptions';
import { createPostgresWebhookStore, createWebhookDeliverer, createWebhookEndpointService, createWebhookSender } from '@tally/webhooks';
import type { Server } from 'node:net';
import { getHeapStatistics } from 'node:v8';
import { ConfigError, loadConfig } from './config';
import { createLogger } from './logger';
import { probeKafka, probeRegistry } from './dependencyProbes';
import { instrumentedEventStore } from './instrumentedEventStore';
import { openEventStore, openPool } from './openEventStore';
import { serviceConnections } from './serviceConnections';
import { onStopSignal } from './stopSignals';
import { createUsageConsumerMetrics } from './usageConsumerMetrics';
import { listenForOperations } from './operationsListener';
import { loadOrCreateLocalApiKey, loadOrCreateLocalSessionSecret, localApiKeyEntry } from './localApiKey';
import { webPagesRoot } from './webPagesRoot';

/**
 * The main job: every role named in TALLY_ROLES (consumer, projector, api, relay, scheduler, webhooks)
 * in one process, wired here and nowhere else. SIGTERM, SIGINT or SIGHUP stops the roles in the
 * reverse order of their start: the API stops taking requests first, the consumer finishes
 * and commits the batch in hand and leaves its group, and the process exits 0; or, when that
 * takes longer than TALLY_SHUTDOWN_TIMEOUT_MS (a dependency that does not answer) or a part
 * throws while stopping, exits 1. A role that fails while running (Worker.onFailure) stops them
 * all the same, and the process exits 1; so does a start that fails part way, for what had started.
 */
/** How long /health's whole check may take before it counts as down. */
const HEALTH_TIMEOUT_MS = 3000;
/** Below HEALTH_TIMEOUT_MS, so one slow dependency reads as down, not as a hung check. */
const PROBE_TIMEOUT_MS = 2000;

/** A dependency's answer as up or down; down as well when it takes longer than PROBE_TIMEOUT_MS. */
async function upOrDown(check: () => Promise<unknown>): Promise<'up' | 'down'> {
  try {
    await withDeadline(check(), PROBE_TIMEOUT_MS, () => new Error('probe timed out'));
    return 'up';
  } catch {
    return 'down';
  }
}

const USAGE = `usage: node services/tally/dist/main.js [--help]

Runs Tally's main job until SIGTERM, SIGINT (Ctrl-C) or SIGHUP (its terminal closed; a stop,
not a reload: the configuration is read once): it then stops gracefully, finishing the work in
hand. The roles TALLY_ROLES names (consumer, projector, api, relay, scheduler, webhooks; all of
them by default) run in this one process. It takes no
arguments: it is configured by TALLY_* environment variables alone (README.md, "Configuration";
"Running Tally" for the roles). The \`tally\` command (cli.js) is the operators' command line.
`;

/** Exit code of a command line main cannot run (as the CLI's): before anything is connected. */
const EXIT_USAGE = 2;

/**
 * A port the process cannot have is the operator's to fix, as a configuration mistake is
 * (ConfigError: one line naming the settings, no stack trace); any other error is left as it is.
 */
function listenError(error: unknown, host: string, port: number): unknown {
  const where = `TALLY_API_PORT ${port} on TALLY_API_HOST ${host}`;
  switch ((error as NodeJS.ErrnoException | undefined)?.code) {
    case 'EADDRINUSE':
      return new ConfigError(`${where} is in use (EADDRINUSE): stop what listens there, or set another port`, { cause: error });
    case 'EACCES':
      return new ConfigError(`${where} is not this process's to listen on (EACCES): a port below 1024 needs privileges; set another`, { cause: error });
    case 'EADDRNOTAVAIL':
      return new ConfigError(`TALLY_API_HOST ${host} is not an address of this host (EADDRNOTAVAIL)`, { cause: error });
    default:
      return error;
  }
}

/**
 * Set once main has parts to stop: a start that fails part way stops what it started, as a stop
 * signal would (bounded by TALLY_SHUTDOWN_TIMEOUT_MS), then exits 1. Without it a consumer that
 * joined its group would hold its partitions until the session timeout, unconsumed.
 */
let stopAfterFailedStart: (() => Promise<void>) | undefined;

/** --help answered and anything else refused here, before any connection or role starts. */
function readArguments(args: readonly string[]): void {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  if (args.length > 0) {
    process.stderr.write(`tally: main takes no arguments, got ${args.join(' ')}\n\n${USAGE}`);
    process.exit(EXIT_USAGE);
  }
}

async function main(): Promise<void> {
  readArguments(process.argv.slice(2));
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel, base: { service: 'tally', pid: process.pid } });
  const roles = config.roles;
  logger.info({ roles: [...roles], heapLimitMiB: Math.round(getHeapStatistics().heap_size_limit / 2 ** 20) }, 'starting Tally');
  // The caches and fetches are bounded by bytes, but the process's memory is bounded only if V8's
  // heap is: node flags, which this process cannot set for itself once started.
  const sizedHeapBytes = (CONSUMER_MAX_OLD_SPACE_MIB + 3 * CONSUMER_MAX_SEMI_SPACE_MIB + 16) * 2 ** 20;
  if (roles.size === 1 && roles.has('consumer') && getHeapStatistics().heap_size_limit > sizedHeapBytes) {
    logger.warn(
      { recommended: CONSUMER_NODE_OPTIONS },
      'the consumer runs without a bounded V8 heap, so its memory follows V8\'s headroom rather than its caches; start it with NODE_OPTIONS set to the recommended flags (README, "Memory of a consumer process")',
    );
  }

  // Every role and connection, stopped in the reverse order of their start within one bound.
  // Whatever is still stopping when it ends (a batch retrying a database that does not answer, a
  // dead letter for a broker that is gone, a lease release) is abandoned, and that loses nothing:
  // Kafka offsets and the relay's checkpoint move only after what they cover is durable, so the
  // work in hand is delivered again to whoever takes over, and the deterministic ledger event ids
  // make it apply once.
  // A role that fails while running (the consumer's client gave up) stops them all, and the
  // process exits 1: a supervisor restarts it, rather than it idling with a /health that looks well.
  const parts = createWorkerGroup({ logger, stopTimeoutMs: config.timeouts.shutdownMs, onFailure: (component) => void shutdown(`${component} failed`, 'role') });
  // One stop, whatever asks for it first; later callers wait on the same (it ends the process).
  let stopping: Promise<void> | undefined;
  function shutdown(signal: string, failed?: 'role' | 'start'): Promise<void> {
    stopping ??= stop(signal, failed);
    return stopping;
  }
  async function stop(signal: string, failed?: 'role' | 'start'): Promise<void> {
    const timeoutMs = config.timeouts.shutdownMs;
    logger.info({ signal, timeoutMs }, 'stopping');
    const outcome = await parts.stop();
    if (!outcome.completed) {
      logger.error({ component: outcome.waitingFor, timeoutMs }, 'did not stop within TALLY_SHUTDOWN_TIMEOUT_MS; exiting, uncommitted work is redelivered');
      process.exit(1);
    }
    if (outcome.failed.length > 0) {
      // Stopped, but not cleanly: a supervisor (and whoever reads the exit code) should know.
      logger.error({ components: outcome.failed }, 'stopped, but some parts failed to stop cleanly; exiting 1');
      process.exit(1);
    }
    if (failed !== undefined) {
      logger.error({ reason: signal }, failed === 'role' ? 'stopped after a role failed; exiting 1' : 'stopped what had started after the start failed; exiting 1');
      process.exit(1);
    }
    logger.info('stopped; bye');
    process.exit(0);
  }
  // Registered first, so a signal during start-up still stops what has started so far. SIGHUP
  // too (a closed terminal, `kill -HUP`): a stop, not a reload, as the CLI's (stopSignals.ts).
  onStopSignal((signal) => void shutdown(signal));
  stopAfterFailedStart = () => shutdown('start failed', 'start');

  // TLS and authentication to Kafka, the registry and Redis, for every client created below.
  const connections = serviceConnections(config);

  const metrics = createMetricsRegistry({
    defaultMetrics: true,
    onCollectError: (error, metric) => logger.warn({ err: error, metric }, 'metric collection failed'),
  });
  const appendSeconds = metrics.histogram({
    name: 'tally_event_store_append_seconds',
    help: 'Time to append to the event store, by operation',
    labelNames: ['operation'] as const,
  });

  const pool = openPool(config, { applicationName: `tally-${[...roles].join('-')}`, max: config.database.poolSize, logger });
  parts.add('postgres', () => pool.end());
  await migrate({ pool, schema: config.database.schema, logger });

  // PostgreSQL or EventStoreDB (TALLY_EVENT_STORE); every role below sees only the port.
  const rawEventStore = await openEventStore(config, pool, logger);
  parts.add('event-store', () => rawEventStore.close());
  const eventStore = instrumentedEventStore(rawEventStore, appendSeconds);
  const catalog = createPostgresCatalogStore({ pool, logger });
  const balanceRegistry = createPostgresBalanceRegistry({ pool });
  const clock = () => new Date();
  const stateStore = createPostgresBalanceStateStore({ pool });
  const ledger = createLedgerService({
    eventStore,
    catalog,
    balanceRegistry,
    logger,
    clock,
    stateStore,
    loadBudgetMs: config.timeouts.balanceLoadMs,
  });
  // Stopped after the roles that write through it and before the event store: a balance fold
  // still running in the background (a write answered 503 balance_loading) ends at its next page.
  parts.add('ledger', () => ledger.close());
  const purchases = createPurchaseService({ catalog, balanceRegistry, ledger, logger });
  const autoRecharges = createAutoRecharges({ pool, balanceRegistry, purchases, ledger, eventStore });

  const needsRedis = roles.has('projector') || roles.has('api');
  const redis = needsRedis
    ? // Auto-pipelined: concurrent lookups share round trips (projections/src/createRedisClient.ts).
      createRedisClient({ url: config.redis.url, commandTimeoutMs: config.timeouts.redisCommandMs, enableAutoPipelining: true, ...connections.redis })
    : undefined;
  if (redis !== undefined) {
    redis.on('error', (error) => logger.warn({ err: error }, 'redis connection problem'));
    parts.add('redis', () => void redis.disconnect());
  }

  // The balance registry from memory, each customer's entry dropped by migration 011's NOTIFY:
  // the consumer's charges and the API's usage lookups find a customer's balances there. One per
  // process, whichever of the two it runs.
  const registryCache =
    roles.has('consumer') || roles.has('api')
      ? createBalanceRegistryCache({ store: balanceRegistry, pool, logger, capacity: config.consumer.registryCacheSize, maxBytes: config.consumer.registryCacheBytes })
      : undefined;
  if (registryCache !== undefined) {
    await registryCache.start();
    parts.add('balance-registry-cache', () => registryCache.close());
    // What TALLY_CONSUMER_REGISTRY_CACHE_* are tuned by: read from the cache at scrape time.
    const registryFigures = [
      ['tally_balance_registry_cache_hits_total', 'Customers whose balances were found in the registry cache', 'hits'],
      ['tally_balance_registry_cache_misses_total', 'Customers whose balances were read from credit_balances (not kept, or not listening)', 'misses'],
      ['tally_balance_registry_cache_invalidations_total', "Registry changes (NOTIFY) and LISTEN connection losses that dropped kept customers", 'invalidations'],
      ['tally_balance_registry_cache_customers', 'Customers whose balances the registry cache keeps', 'customers'],
      ['tally_balance_registry_cache_bytes', 'Estimated bytes of what the registry cache keeps', 'bytes'],
    ] as const;
    for (const [name, help, field] of registryFigures) metrics.gauge({ name, help, collect: (gauge) => gauge.set(registryCache.stats()[field]) });
  }

  // Read by /health when this process also runs the consumer.
  let stalledPartitions: (() => readonly StalledPartition[]) | undefined;
  if (roles.has('consumer') && registryCache !== undefined) {
    const catalogCache = createCatalogCache({ store: catalog, logger, refreshIntervalMs: config.catalogRefreshMs });
    await catalogCache.start();
    parts.add('catalog-cache', () => catalogCache.stop());
    const consumer = createUsageConsumer({
      kafka: { brokers: config.kafka.brokers, clientId: config.kafka.clientId, ...connections.kafka },
      groupId: config.consumer.groupId,
      topic: config.topics.usage,
      dlqTopic: config.topics.deadLetter,
      registryUrl: config.registryUrl,
      ...(connections.registryAuth !== undefined ? { registryAuth: connections.registryAuth } : {}),
      eventStore,
      // The consumer's own states and command path, not the API's (see createUsageBalanceWrites).
      balanceWrites: createUsageBalanceWrites({
        eventStore,
        stateStore: createPostgresBalanceStateStore({ pool }),
        logger,
        cacheSize: config.consumer.balanceCacheSize,
        cacheBytes: config.consumer.balanceCacheBytes,
      }),
      balanceRegistry: registryCache,
      catalogCache,
      logger,
      ...(config.consumer.partitionsConsumedConcurrently !== undefined
        ? { partitionsConsumedConcurrently: config.consumer.partitionsConsumedConcurrently }
        : {}),
      batchSize: config.consumer.batchSize,
      maxFetchBytes: config.consumer.maxFetchBytes,
      maxFetchBytesPerPartition: config.consumer.maxFetchBytesPerPartition,
      sessionTimeoutMs: config.consumer.sessionTimeoutMs,
      stateFlushIntervalMs: config.consumer.stateFlushMs,
      compression: compressionType(config.kafka.compression),
      metrics: createUsageConsumerMetrics(metrics),
    });
    const counters = [
      ['consumed', 'Usage events consumed and committed'],
      ['matched', 'Usage events and balances that became a CreditConsumed'],
      ['skipped', 'Usage events or pairs that changed nothing (no balance, no matching rule, duplicate)'],
      ['deadLettered', 'Messages sent to the dead-letter topic'],
      ['deadLetterRefusals', 'Dead letters the dead-letter topic refused, each try (their partition waits at the message and tries again)'],
      ['appended', 'Ledger events appended by the consumer'],
      ['conflicts', 'Appends redone after a concurrent writer'],
    ] as const;
    for (const [field, help] of counters) {
      const name = `tally_consumer_${field.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`)}_total`;
      // Exposed as gauges read at scrape time: the consumer owns the running totals.
      metrics.gauge({ name, help, collect: (gauge) => gauge.set(consumer.counters()[field]) });
    }
    metrics.gauge({
      name: 'tally_consumer_stalled_partitions',
      help: 'Partitions stopped at a record batch that cannot be decoded (see the log and /health; tally skip-batch)',
      collect: (gauge) => gauge.set(consumer.stalledPartitions().length),
    });
    stalledPartitions = () => consumer.stalledPartitions();
    await parts.start(consumer);
  }

  if (roles.has('projector') && redis !== undefined) {
    const projector = createBalanceProjector({ eventStore, redis, keyPrefix: config.redis.keyPrefix, snapshotCacheSize: config.projector.snapshotCacheSize, metrics, logger });
    await parts.start(projector);
    // Consumption per hour and event name (the console's charts) in PostgreSQL, from either event
    // store; with a lease, so that of several projector processes one works at a time.
    await parts.start(createConsumptionProjector({ eventStore, pool, metrics, logger }));
  }

  if (roles.has('relay')) {
    const relay = createLedgerRelay({
      eventStore,
      pool,
      checkpointName: ledgerRelayCheckpointName(config.topics.ledger),
      kafka: { brokers: config.kafka.brokers, clientId: `${config.kafka.clientId}-relay`, ...connections.kafka },
      topic: config.topics.ledger,
      registryUrl: config.registryUrl,
      compression: compressionType(config.kafka.compression),
      ...(connections.registryAuth !== undefined ? { registryAuth: connections.registryAuth } : {}),
      leaseTimeoutMs: config.timeouts.relayLeaseMs,
      metrics,
      logger,
    });
    await parts.start(relay);
  }

  const webhookStore = createPostgresWebhookStore(pool);
  // The deliverer's, and the API's for endpoints' test messages: one set of limits.
  const webhookSender = createWebhookSender({
    allowPrivateNetworks: config.webhooks.allowPrivateNetworks,
    connectTimeoutMs: config.webhooks.connectTimeoutMs,
    responseTimeoutMs: config.webhooks.responseTimeoutMs,
  });
  if (roles.has('webhooks')) {
    // Of the processes with this role one delivers (it holds the lease) and the others stand by.
    const deliverer = createWebhookDeliverer({
      eventStore,
      checkpoints: createPostgresCheckpointStore(pool),
      pool,
      store: webhookStore,
      balanceStates: createBalanceStates({ eventStore, stateStore: createPostgresBalanceStateStore({ pool }), logger }),
      send: webhookSender,
      retry: config.webhooks.retry,
      concurrency: config.webhooks.concurrency,
      pollMs: config.webhooks.pollMs,
      retention: { deliveredMs: config.webhooks.retainDeliveredMs },
      clock,
      logger,
      metrics: {
        registry: metrics,
        lagEvents: { name: 'tally_webhooks_lag_events', help: 'Event store positions not yet turned into webhook deliveries' },
        lagSeconds: { name: 'tally_webhooks_lag_seconds', help: 'Age of the oldest event not yet turned into webhook deliveries' },
        leading: { name: 'tally_webhooks_delivering', help: '1 while this process holds the webhooks lease and delivers, 0 while it stands by' },
      },
    });
    await parts.start(deliverer);
  }

  const plans = createPostgresPlanStore({ pool, logger });
  const subscriptionStore = createPostgresSubscriptionStore({ pool, logger });
  if (roles.has('scheduler')) {
    const scheduler = createGrantScheduler({
      subscriptions: subscriptionStore,
      ledger,
      balanceRegistry,
      clock,
      intervalMs: config.schedulerIntervalMs,
      maxPeriodsPerRun: config.grants.maxPeriodsPerRun,
      logger,
    });
    await parts.start(scheduler);
    // Holds not captured or released by their expiry are freed here: one process of those
    // running the scheduler role at a time (a lease), resuming from its checkpoint after a restart.
    const holdExpiry = createHoldExpiryWorker({
      eventStore,
      checkpoints: createPostgresCheckpointStore(pool),
      index: createPostgresHoldExpiryIndex(pool),
      ledger,
      logger,
      lease: { pool },
      metrics,
      clock,
    });
    await parts.start(holdExpiry);
    // A balance below its warning limit buys its auto-recharge bundle: once per warning, one
    // process of those running the scheduler role at a time (a lease), from its checkpoint.
    await parts.start(createAutoRechargeProcessor({ eventStore, pool, recharges: autoRecharges, purchases, ledger, logger, metrics }));
  }

  // /health's dependencies: those this process uses (a scheduler has no Kafka to be down).
  const usesKafka = roles.has('consumer') || roles.has('relay') || roles.has('api');
  const health = async (): Promise<Record<string, 'up' | 'down'>> => {
    const checks: Array<readonly [string, Promise<'up' | 'down'>]> = [
      ['postgres', upOrDown(() => pool.query('SELECT 1'))],
      ...(redis !== undefined ? [['redis', upOrDown(() => redis.ping())] as const] : []),
      ...(usesKafka
        ? ([
            ['kafka', probeKafka(config.kafka.brokers, PROBE_TIMEOUT_MS)],
            ['schemaRegistry', probeRegistry(config.registryUrl, PROBE_TIMEOUT_MS, connections.registryAuth)],
          ] as const)
        : []),
      // PostgreSQL is checked above whichever store holds the events; EventStoreDB only when it does.
      ...(config.eventStore.kind === 'eventstoredb' ? [['eventStore', upOrDown(() => rawEventStore.headPosition())] as const] : []),
    ];
    return Object.fromEntries(await Promise.all(checks.map(async ([name, state]) => [name, await state] as const)));
  };
  let listening: ReturnType<Server['address']> = null;

  if (roles.has('api') && redis !== undefined && registryCache !== undefined) {
    let apiKeys: ReadonlyArray<string | ApiKey> | undefined = config.api.keys;
    if (apiKeys === undefined) {
      const local = loadOrCreateLocalApiKey(config.home);
      apiKeys = [localApiKeyEntry(local.key)];
      // Printed on purpose: a newcomer's first curl needs it. Production sets TALLY_API_KEYS.
      process.stdout.write(`\nTally API key (stored in ${local.file}): ${local.key}\n\n`);
    }
    // HTTP-ingested usage goes to the usage topic, for the consumer to meter like any other.
    const usagePublisher = createUsagePublisher({
      kafka: { brokers: config.kafka.brokers, clientId: `${config.kafka.clientId}-ingest`, ...connections.kafka },
      topic: config.topics.usage,
      compression: compressionType(config.kafka.compression),
      logger,
    });
    parts.add('usage-publisher', () => usagePublisher.stop());
    // The rate limiter's own connection: fail-fast and auto-pipelined (RATE_LIMIT_REDIS_CLIENT says why).
    const rateLimitRedis = createRedisClient({ url: config.redis.url, ...RATE_LIMIT_REDIS_CLIENT, ...connections.redis });
    rateLimitRedis.on('error', (error) => logger.warn({ err: error }, 'rate-limit redis connection problem'));
    parts.add('rate-limit-redis', () => void rateLimitRedis.disconnect());
    // The console's Dead letters page: the API processes read the dead-letter topic, as one group,
    // into a bounded log in Redis.
    const deadLetters = createDeadLetterLog({ redis, keyPrefix: config.redis.keyPrefix });
    const deadLetterRecorder = createDeadLetterRecorder({
      kafka: { brokers: config.kafka.brokers, clientId: `${config.kafka.clientId}-dead-letters`, ...connections.kafka },
      topic: config.topics.deadLetter,
      groupId: `${config.consumer.groupId}-dead-letters`,
      log: deadLetters,
      logger,
    });
    await parts.start(deadLetterRecorder);
    // The Dead letters page's Send back: `tally redrive`'s work, run in this process's background.
    const redrives = createDeadLetterRedrives({
      kafka: { brokers: config.kafka.brokers, clientId: `${config.kafka.clientId}-redrive`, ...connections.kafka },
      dlqTopic: config.topics.deadLetter,
      usageTopic: config.topics.usage,
      compression: compressionType(config.kafka.compression),
      redis,
      keyPrefix: config.redis.keyPrefix,
      deadLetters,
      pool,
      logger,
      clock,
    });
    parts.add('dead-letter-redrives', () => redrives.stop());
    // The Dead letters page's letter whole: read from the topic, its record with the consumer's decoder.
    const deadLetterReader = createDeadLetterReader({
      kafka: { brokers: config.kafka.brokers, clientId: `${config.kafka.clientId}-dead-letter-read`, ...connections.kafka },
      dlqTopic: config.topics.deadLetter,
      decoder: createUsageEventDecoder({ registryUrl: config.registryUrl, ...(connections.registryAuth !== undefined ? { auth: connections.registryAuth } : {}) }),
    });
    // Running totals read at scrape time, as the consumer's: the send-backs own their counts.
    metrics.gauge({
      name: 'tally_dead_letters_sent_back_total',
      help: 'Dead letters this process sent back to the usage topic (console, API), by error code',
      labelNames: ['error_code'] as const,
      collect: (gauge) => {
        for (const [code, count] of Object.entries(redrives.counters().sentBackByErrorCode)) gauge.set({ error_code: code }, count);
      },
    });
    metrics.gauge({
      name: 'tally_dead_letter_send_backs_total',
      help: 'Send-backs of dead letters that ended in this process, by status',
      labelNames: ['status'] as const,
      collect: (gauge) => {
        for (const [status, count] of Object.entries(redrives.counters().endedByStatus)) gauge.set({ status }, count);
      },
    });
    metrics.gauge({
      name: 'tally_dead_letter_send_back_running',
      help: '1 while this process runs a send-back of dead letters',
      collect: (gauge) => gauge.set(redrives.counters().running),
    });
    // The timeouts and limits are ApiOptions' own fields, passed as they are.
    const { trustProxy, rateLimit, ...limits } = config.apiProtection;
    const app = await buildApp({
      options: {
        ...limits,
        healthTimeoutMs: HEALTH_TIMEOUT_MS,
        // Reads of a balance the read model lacks load its state as writes do, within the same budget.
        balanceLoadBudgetMs: config.timeouts.balanceLoadMs,
        ...(trustProxy !== undefined ? { trustProxy } : {}),
        rateLimit: { ...rateLimit, redis: rateLimitRedis, redisKeyPrefix: `${config.redis.keyPrefix}:rate-limit:` },
      },
      catalog,
      balanceRegistry: registryCache,
      ledger,
      balances: createBalanceReadModel({ redis, keyPrefix: config.redis.keyPrefix }),
      eventStore,
      apiKeys,
      logger,
      metrics,
      subscriptions: createSubscriptionService({
        plans,
        subscriptions: subscriptionStore,
        ledger,
        catalog,
        balanceRegistry,
        clock,
        logger,
        inlineGrantPeriods: config.grants.inlinePeriods,
      }),
      purchases,
      autoRecharges,
      customers: createPostgresCustomerDirectory({ pool }),
      // Kept by the projector role's consumption projector (see above), whichever event store.
      consumption: createPostgresConsumptionStore({ pool }),
      // The folds before them kept with the balances' other stored states, whichever event store.
      statementStarts: createPostgresStatementStarts({ pool, states: stateStore }),
      deadLetters,
      redrives,
      deadLetterReader,
      processors: () => readProcessorStatus(pool, eventStore),
      web: {
        secret: config.web.sessionSecret ?? loadOrCreateLocalSessionSecret(config.home),
        sessionTtlMs: config.web.sessionTtlMs,
        portalTtlMs: config.web.portalLinkTtlMs,
        portalMaxPurchaseQuantity: config.web.portalMaxPurchaseQuantity,
        // Sessions signed out and portal links revoked, for every API process and across restarts.
        redis,
        redisKeyPrefix: `${config.redis.keyPrefix}:web:`,
        pagesRoot: webPagesRoot(logger),
        ...(config.web.publicUrl !== undefined ? { publicUrl: config.web.publicUrl } : {}),
      },
      webhooks: createWebhookEndpointService({
        store: webhookStore,
        eventStore,
        secretGraceMs: config.webhooks.secretGraceMs,
        clock,
        allowPrivateNetworks: config.webhooks.allowPrivateNetworks,
        // An endpoint's test message goes out from the API process, under the deliverer's limits.
        send: webhookSender,
      }),
      stalledPartitions: () => stalledPartitions?.() ?? [],
      usagePublisher,
      health,
    });
    await app.listen({ host: config.api.host, port: config.api.port }).catch((error: unknown) => {
      throw listenError(error, config.api.host, config.api.port);
    });
    parts.add('api', () => app.close());
    listening = app.server.address();
  } else {
    // Every process answers /health and /metrics (scraped and probed like any other), on the
    // API's address: one port per process whatever its roles.
    const operations = await listenForOperations({
      host: config.api.host,
      port: config.api.port,
      logger,
      metrics,
      health,
      healthTimeoutMs: HEALTH_TIMEOUT_MS,
      healthIntervalMs: config.apiProtection.healthIntervalMs,
      stalledPartitions: () => stalledPartitions?.() ?? [],
      connectionTimeoutMs: config.apiProtection.connectionTimeoutMs,
      keepAliveTimeoutMs: config.apiProtection.keepAliveTimeoutMs,
      requestTimeoutMs: config.apiProtection.requestTimeoutMs,
    }).catch((error: unknown) => {
      throw listenError(error, config.api.host, config.api.port);
    });
    parts.add('operations-listener', () => operations.close());
    listening = operations.server.address();
  }

  // The port too: with TALLY_API_PORT=0 it is only known here.
  logger.info({ roles: [...roles], listening }, 'Tally is running');
}

main().catch(async (error: unknown) => {
  // A configuration mistake (a port in use too) is the operator's to fix, and the message names
  // the variable: a stack trace would only bury it. Anything else is ours, and its stack is what a
  // bug report needs.
  const detail = error instanceof ConfigError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`tally: failed to start: ${detail}\n`);
  // Exits 1 once what had started has stopped.
  await stopAfterFailedStart?.();
  process.exit(1);
});
