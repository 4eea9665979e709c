import { ConfigError, configSchema, loadConfig } from './config';

describe('loadConfig', () => {
  it('gives the local stack defaults when nothing is set', () => {
    const config = loadConfig({});
    expect(config.kafka.brokers).toEqual(['127.0.0.1:9092']);
    expect(config.registryUrl).toBe('http://127.0.0.1:8081/apis/ccompat/v7');
    expect(config.topics).toEqual({ usage: 'usage-events', deadLetter: 'usage-events.dlq', ledger: 'credit-ledger' });
    expect(config.consumer.groupId).toBe('tally-metering');
    expect(config.consumer.sessionTimeoutMs).toBe(10_000);
    expect(config.consumer.batchSize).toBe(1000);
    expect(config.api).toEqual({ host: '127.0.0.1', port: 8080, keys: undefined });
    expect([...config.roles].sort()).toEqual(['api', 'consumer', 'projector', 'relay', 'scheduler', 'webhooks']);
    expect(config.timeouts).toEqual({
      shutdownMs: 15_000,
      databaseStatementMs: 30_000,
      databaseConnectMs: 10_000,
      redisCommandMs: 5_000,
      relayLeaseMs: 5_000,
      balanceLoadMs: 10_000,
    });
    expect(config.grants).toEqual({ maxPeriodsPerRun: 100, inlinePeriods: 12 });
  });

  it('refuses a Redis key prefix outside its pattern, naming the pattern rather than only "Invalid"', () => {
    // A cluster hash tag, as the projections README once advised: Tally's client is no cluster client.
    expect(() => loadConfig({ TALLY_REDIS_KEY_PREFIX: '{tally}' })).toThrow(/TALLY_REDIS_KEY_PREFIX: 1 to 64 of the characters A-Z a-z 0-9 _ \. : -/);
    expect(loadConfig({ TALLY_REDIS_KEY_PREFIX: 'tally.eu-1:v2' }).redis.keyPrefix).toBe('tally.eu-1:v2');
  });

  it('keeps the events in PostgreSQL unless TALLY_EVENT_STORE says eventstoredb', () => {
    expect(loadConfig({}).eventStore).toEqual({ kind: 'postgres' });
    expect(loadConfig({ TALLY_EVENT_STORE: 'eventstoredb' }).eventStore).toEqual({ kind: 'eventstoredb', connectionString: 'esdb://127.0.0.1:2113?tls=false' });
    const cluster = 'esdb+discover://admin:changeit@cluster.example:2113?tls=true';
    expect(loadConfig({ TALLY_EVENT_STORE: 'eventstoredb', TALLY_EVENTSTORE_CONNECTION_STRING: cluster }).eventStore).toEqual({ kind: 'eventstoredb', connectionString: cluster });
    // Ignored, so not checked, while PostgreSQL holds the events.
    expect(loadConfig({ TALLY_EVENTSTORE_CONNECTION_STRING: 'http://nope' }).eventStore).toEqual({ kind: 'postgres' });
    expect(() => loadConfig({ TALLY_EVENT_STORE: 'mongodb' })).toThrow(/TALLY_EVENT_STORE/);
    const wrong = () => loadConfig({ TALLY_EVENT_STORE: 'eventstoredb', TALLY_EVENTSTORE_CONNECTION_STRING: 'https://user:hunter2@esdb.example:2113' });
    expect(wrong).toThrow(ConfigError);
    expect(wrong).toThrow(/^TALLY_EVENTSTORE_CONNECTION_STRING: not an EventStoreDB connection string/);
    expect(wrong).not.toThrow(/hunter2/);
  });

  it('refuses, on EventStoreDB only, a consumer chunk whose journal entry would not fit one append', () => {
    const onEsdb = (size: string) => loadConfig({ TALLY_EVENT_STORE: 'eventstoredb', TALLY_CONSUMER_BATCH_SIZE: size });
    expect(onEsdb('5000').consumer.batchSize).toBe(5000);
    expect(() => onEsdb('5001')).toThrow(/^TALLY_CONSUMER_BATCH_SIZE: at most 5000 on EventStoreDB/);
    expect(loadConfig({ TALLY_CONSUMER_BATCH_SIZE: '50000' }).consumer.batchSize).toBe(50000);
  });

  it('reads the bounds of every wait', () => {
    const config = loadConfig({
      TALLY_SHUTDOWN_TIMEOUT_MS: '3000',
      TALLY_DATABASE_STATEMENT_TIMEOUT_MS: '1500',
      TALLY_DATABASE_CONNECT_TIMEOUT_MS: '2500',
      TALLY_REDIS_COMMAND_TIMEOUT_MS: '700',
      TALLY_RELAY_LEASE_TIMEOUT_MS: '900',
      TALLY_BALANCE_LOAD_BUDGET_MS: '400',
      TALLY_SCHEDULER_MAX_PERIODS_PER_RUN: '7',
      TALLY_SUBSCRIPTION_INLINE_GRANT_PERIODS: '0',
    });
    expect(config.timeouts).toEqual({ shutdownMs: 3000, databaseStatementMs: 1500, databaseConnectMs: 2500, redisCommandMs: 700, relayLeaseMs: 900, balanceLoadMs: 400 });
    expect(config.grants).toEqual({ maxPeriodsPerRun: 7, inlinePeriods: 0 });
  });

  it('keeps the balance load budget below the request timeout, so a write is answered before the server gives up on it', () => {
    expect(() => loadConfig({ TALLY_BALANCE_LOAD_BUDGET_MS: '30000' })).toThrow(/TALLY_BALANCE_LOAD_BUDGET_MS must be below TALLY_API_REQUEST_TIMEOUT_MS/);
    expect(loadConfig({ TALLY_BALANCE_LOAD_BUDGET_MS: '30000', TALLY_API_REQUEST_TIMEOUT_MS: '60000' }).timeouts.balanceLoadMs).toBe(30_000);
    // No request timeout: nothing to stay below.
    expect(loadConfig({ TALLY_BALANCE_LOAD_BUDGET_MS: '60000', TALLY_API_REQUEST_TIMEOUT_MS: '0' }).timeouts.balanceLoadMs).toBe(60_000);
  });

  it('refuses private webhook addresses, retries webhooks for 3 days and keeps delivered ones 30 days unless told otherwise', () => {
    expect(loadConfig({}).webhooks).toEqual({
      allowPrivateNetworks: false,
      connectTimeoutMs: 5_000,
      responseTimeoutMs: 15_000,
      retry: { initialDelayMs: 5_000, maxDelayMs: 3_600_000, retryForMs: 3 * 24 * 3_600_000 },
      secretGraceMs: 24 * 3_600_000,
      concurrency: 8,
      pollMs: 1_000,
      retainDeliveredMs: 30 * 24 * 3_600_000,
    });
    expect(loadConfig({ TALLY_WEBHOOKS_RETAIN_DELIVERED_MS: '86400000' }).webhooks.retainDeliveredMs).toBe(86_400_000);
    expect(() => loadConfig({ TALLY_WEBHOOKS_RETAIN_DELIVERED_MS: '1000' })).toThrow(/TALLY_WEBHOOKS_RETAIN_DELIVERED_MS/);
    const tuned = loadConfig({
      TALLY_WEBHOOKS_ALLOW_PRIVATE_NETWORKS: 'true',
      TALLY_WEBHOOKS_RETRY_INITIAL_DELAY_MS: '50',
      TALLY_WEBHOOKS_RETRY_MAX_DELAY_MS: '400',
      TALLY_WEBHOOKS_RETRY_FOR_MS: '5000',
    }).webhooks;
    expect(tuned).toMatchObject({ allowPrivateNetworks: true, retry: { initialDelayMs: 50, maxDelayMs: 400, retryForMs: 5000 } });
    expect(() => loadConfig({ TALLY_WEBHOOKS_ALLOW_PRIVATE_NETWORKS: 'yes' })).toThrow(/TALLY_WEBHOOKS_ALLOW_PRIVATE_NETWORKS/);
  });

  it('splits roles, brokers and keys', () => {
    const config = loadConfig({
      TALLY_ROLES: 'consumer, api',
      TALLY_KAFKA_BROKERS: 'a:1,b:2',
      TALLY_API_KEYS: 'aaaaaaaaaaaaaaaa,bbbbbbbbbbbbbbbb',
      TALLY_API_PORT: '9090',
    });
    expect([...config.roles]).toEqual(['consumer', 'api']);
    expect(config.kafka.brokers).toEqual(['a:1', 'b:2']);
    expect(config.api.keys).toEqual([
      { key: 'aaaaaaaaaaaaaaaa', scopes: ['admin'] },
      { key: 'bbbbbbbbbbbbbbbb', scopes: ['admin'] },
    ]);
    expect(config.api.port).toBe(9090);
  });

  it("takes the codec of Tally's own producers, none by default", () => {
    expect(loadConfig({}).kafka.compression).toBe('none');
    expect(loadConfig({ TALLY_KAFKA_COMPRESSION: 'zstd' }).kafka.compression).toBe('zstd');
  });

  it('reads each key\'s scopes: key:scope+scope, a plain key being admin', () => {
    const config = loadConfig({ TALLY_API_KEYS: 'readerreaderreader:read, writerwriterwriter:read+write,ingestingesting00:ingest,plainplainplain00' });
    expect(config.api.keys).toEqual([
      { key: 'readerreaderreader', scopes: ['read'] },
      { key: 'writerwriterwriter', scopes: ['read', 'write'] },
      { key: 'ingestingesting00', scopes: ['ingest'] },
      { key: 'plainplainplain00', scopes: ['admin'] },
    ]);
  });

  it('refuses an unknown scope without printing the key', () => {
    expect(() => loadConfig({ TALLY_API_KEYS: 'secretsecretsecret:reed' })).toThrow(/TALLY_API_KEYS: key 1: unknown scope\(s\) "reed"/);
    expect(() => loadConfig({ TALLY_API_KEYS: 'secretsecretsecret:reed' })).not.toThrow(/secretsecret/);
  });

  it('turns on timeouts, a connection cap and rate limits by default', () => {
    expect(loadConfig({}).apiProtection).toEqual({
      requestTimeoutMs: 30_000,
      headersTimeoutMs: 10_000,
      bodyTimeoutMs: 10_000,
      connectionTimeoutMs: 30_000,
      keepAliveTimeoutMs: 5_000,
      maxConnections: 1024,
      healthIntervalMs: 5_000,
      trustProxy: undefined,
      rateLimit: { windowMs: 60_000, perKey: 60_000, perAddress: 1_200, failedAuthPerAddress: 60, syncMs: 100 },
    });
    // 0 is exact counting in Redis; past a minute the counts would lag a whole default window.
    expect(loadConfig({ TALLY_API_RATE_LIMIT_SYNC_MS: '0' }).apiProtection.rateLimit.syncMs).toBe(0);
    expect(() => loadConfig({ TALLY_API_RATE_LIMIT_SYNC_MS: '60001' })).toThrow(/TALLY_API_RATE_LIMIT_SYNC_MS/);
  });

  it('takes TLS and SASL to Kafka, basic auth to the registry and a CA for Redis, all optional', () => {
    expect(loadConfig({}).connections).toEqual({
      kafka: { ssl: false, caFile: undefined, sasl: undefined },
      registryAuth: undefined,
      redisCaFile: undefined,
    });
    const config = loadConfig({
      TALLY_KAFKA_SSL_CA_FILE: '/etc/tally/kafka-ca.pem',
      TALLY_KAFKA_SASL_MECHANISM: 'scram-sha-512',
      TALLY_KAFKA_SASL_USERNAME: 'tally',
      TALLY_KAFKA_SASL_PASSWORD: 'secret',
      TALLY_SCHEMA_REGISTRY_USERNAME: 'reg',
      TALLY_SCHEMA_REGISTRY_PASSWORD: 'istry',
      TALLY_REDIS_URL: 'rediss://redis.internal:6380',
      TALLY_REDIS_TLS_CA_FILE: '/etc/tally/redis-ca.pem',
    });
    expect(config.connections).toEqual({
      kafka: { ssl: true, caFile: '/etc/tally/kafka-ca.pem', sasl: { mechanism: 'scram-sha-512', username: 'tally', password: 'secret' } },
      registryAuth: { username: 'reg', password: 'istry' },
      redisCaFile: '/etc/tally/redis-ca.pem',
    });
  });

  it.each([
    [{ TALLY_KAFKA_SASL_MECHANISM: 'scram-sha-256' }, /TALLY_KAFKA_SASL_MECHANISM, TALLY_KAFKA_SASL_USERNAME and TALLY_KAFKA_SASL_PASSWORD/],
    [{ TALLY_KAFKA_SASL_USERNAME: 'u', TALLY_KAFKA_SASL_PASSWORD: 'p' }, /TALLY_KAFKA_SASL_MECHANISM/],
    [{ TALLY_KAFKA_SASL_MECHANISM: 'gssapi' }, /TALLY_KAFKA_SASL_MECHANISM/],
    [{ TALLY_SCHEMA_REGISTRY_USERNAME: 'u' }, /TALLY_SCHEMA_REGISTRY_PASSWORD/],
    [{ TALLY_REDIS_TLS_CA_FILE: '/ca.pem' }, /rediss:\/\//],
  ])('refuses half a connection setting %j', (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('refuses credentials in TALLY_SCHEMA_REGISTRY_URL, which fetch refuses for ever, pointing to the variables that carry them, without printing them', () => {
    const refusal = () => loadConfig({ TALLY_SCHEMA_REGISTRY_URL: 'https://reg:s3cret@registry.internal/apis/ccompat/v7' });
    expect(refusal).toThrow(/TALLY_SCHEMA_REGISTRY_URL: .*TALLY_SCHEMA_REGISTRY_USERNAME and TALLY_SCHEMA_REGISTRY_PASSWORD/);
    expect(refusal).not.toThrow(/s3cret/);
    expect(() => loadConfig({ TALLY_SCHEMA_REGISTRY_URL: 'https://reg@registry.internal' })).toThrow(/TALLY_SCHEMA_REGISTRY_URL/);
    expect(() => loadConfig({ TALLY_SCHEMA_REGISTRY_URL: 'ftp://registry.internal' })).toThrow(/TALLY_SCHEMA_REGISTRY_URL: an http or https URL/);
    expect(() => loadConfig({ TALLY_SCHEMA_REGISTRY_URL: 'not a url' })).toThrow(/invalid configuration: TALLY_SCHEMA_REGISTRY_URL/);
    expect(loadConfig({ TALLY_SCHEMA_REGISTRY_URL: 'https://registry.internal:8443/apis/ccompat/v7' }).registryUrl).toBe('https://registry.internal:8443/apis/ccompat/v7');
  });

  it.each([
    ['true', true],
    ['10.0.0.1, 10.1.0.0/16', ['10.0.0.1', '10.1.0.0/16']],
    ['false', undefined],
  ])('reads TALLY_API_TRUST_PROXY=%s', (text, trustProxy) => {
    expect(loadConfig({ TALLY_API_TRUST_PROXY: text }).apiProtection.trustProxy).toEqual(trustProxy);
  });

  it('reads TALLY_PUBLIC_URL as an origin, and refuses one with a path or another scheme', () => {
    expect(loadConfig({}).web.publicUrl).toBeUndefined();
    expect(loadConfig({ TALLY_PUBLIC_URL: 'https://Billing.Example.com/' }).web.publicUrl).toBe('https://billing.example.com');
    expect(loadConfig({ TALLY_PUBLIC_URL: 'http://127.0.0.1:8080' }).web.publicUrl).toBe('http://127.0.0.1:8080');
    for (const wrong of ['https://billing.example.com/tally', 'https://billing.example.com/?a=1', 'ftp://billing.example.com', 'billing.example.com']) {
      expect(() => loadConfig({ TALLY_PUBLIC_URL: wrong })).toThrow(/TALLY_PUBLIC_URL/);
    }
  });

  it('refuses a hop count in TALLY_API_TRUST_PROXY, which would believe any client that connects directly', () => {
    expect(() => loadConfig({ TALLY_API_TRUST_PROXY: '2' })).toThrow(/TALLY_API_TRUST_PROXY: a hop count trusts any client that connects directly/);
  });

  it('hands the consumer the chunk size TALLY_CONSUMER_BATCH_SIZE gives', () => {
    expect(loadConfig({ TALLY_CONSUMER_BATCH_SIZE: '250' }).consumer.batchSize).toBe(250);
  });

  it.each(Object.keys(configSchema.shape))('takes %s set to nothing or spaces as unset, as every variable', (name) => {
    expect(loadConfig({ [name]: '' })).toEqual(loadConfig({}));
    expect(loadConfig({ [name]: ' \t' })).toEqual(loadConfig({}));
  });

  it('reads numbers in decimal digits only, naming the variable otherwise', () => {
    expect(loadConfig({ TALLY_API_PORT: ' 9090 ', TALLY_CONSUMER_PARTITIONS_CONCURRENTLY: '2' })).toMatchObject({
      api: { port: 9090 },
      consumer: { partitionsConsumedConcurrently: 2 },
    });
    for (const wrong of ['0x1F90', '8e3', '8080.0', '1.5', '-1', '+8080', '8 080', 'Infinity']) {
      expect(() => loadConfig({ TALLY_API_PORT: wrong })).toThrow(/TALLY_API_PORT: a whole number in decimal digits/);
    }
    expect(() => loadConfig({ TALLY_CONSUMER_PARTITIONS_CONCURRENTLY: '2e0' })).toThrow(/TALLY_CONSUMER_PARTITIONS_CONCURRENTLY/);
    // Past the bounds still says so.
    expect(() => loadConfig({ TALLY_API_PORT: '65536' })).toThrow(/TALLY_API_PORT/);
  });

  it.each([',', ' , ', ',,'])('refuses TALLY_API_KEYS=%j, which is set yet holds no key, rather than making a local admin key', (text) => {
    expect(() => loadConfig({ TALLY_API_KEYS: text })).toThrow(ConfigError);
    expect(() => loadConfig({ TALLY_API_KEYS: text })).toThrow(/^TALLY_API_KEYS: holds no key/);
  });

  it.each(['aaaaaaaaaaaaaaaa,,bbbbbbbbbbbbbbbb', 'aaaaaaaaaaaaaaaa,'])('refuses TALLY_API_KEYS=%j, an empty entry (an unset variable in "$OPS,$BACKEND"), naming it', (text) => {
    expect(() => loadConfig({ TALLY_API_KEYS: text })).toThrow(ConfigError);
    expect(() => loadConfig({ TALLY_API_KEYS: text })).toThrow(/^TALLY_API_KEYS: key 2: an empty entry in the list/);
  });

  it.each(['ture', '10.0.0.1,', '10.0.0.1,,10.0.0.2', '10.0.0.0/33', '10.0.0.1, proxy.internal'])('refuses TALLY_API_TRUST_PROXY=%j at start, naming it', (text) => {
    expect(() => loadConfig({ TALLY_API_TRUST_PROXY: text })).toThrow(ConfigError);
    expect(() => loadConfig({ TALLY_API_TRUST_PROXY: text })).toThrow(/TALLY_API_TRUST_PROXY: /);
  });

  it("takes proxy-addr's names and IPv6 ranges in TALLY_API_TRUST_PROXY, as Fastify does", () => {
    expect(loadConfig({ TALLY_API_TRUST_PROXY: 'loopback, fd00::/8' }).apiProtection.trustProxy).toEqual(['loopback', 'fd00::/8']);
  });

  it.each(['a:9092,', ',a:9092', 'a:9092,,b:9092', 'a:9092, '])('refuses TALLY_KAFKA_BROKERS=%j with an empty broker', (text) => {
    expect(() => loadConfig({ TALLY_KAFKA_BROKERS: text })).toThrow(/TALLY_KAFKA_BROKERS: an empty entry/);
  });

  it('is frozen', () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.kafka)).toBe(true);
  });

  it.each([
    [{ TALLY_ROLES: 'consumer,bogus' }, /TALLY_ROLES/],
    [{ TALLY_API_PORT: 'eighty' }, /TALLY_API_PORT/],
    [{ TALLY_API_KEYS: 'short' }, /TALLY_API_KEYS/],
    [{ TALLY_DATABASE_URL: 'not a url' }, /TALLY_DATABASE_URL/],
    [{ TALLY_LOG_LEVEL: 'loud' }, /TALLY_LOG_LEVEL/],
    [{ TALLY_CONSUMER_SESSION_TIMEOUT_MS: '1000' }, /TALLY_CONSUMER_SESSION_TIMEOUT_MS/],
    [{ TALLY_CONSUMER_BATCH_SIZE: '0' }, /TALLY_CONSUMER_BATCH_SIZE/],
    [{ TALLY_CONSUMER_BATCH_SIZE: '100001' }, /TALLY_CONSUMER_BATCH_SIZE/],
    [{ TALLY_KAFKA_COMPRESSION: 'brotli' }, /TALLY_KAFKA_COMPRESSION/],
    [{ TALLY_SHUTDOWN_TIMEOUT_MS: '0' }, /TALLY_SHUTDOWN_TIMEOUT_MS/],
    [{ TALLY_DATABASE_STATEMENT_TIMEOUT_MS: 'soon' }, /TALLY_DATABASE_STATEMENT_TIMEOUT_MS/],
    [{ TALLY_SCHEDULER_MAX_PERIODS_PER_RUN: '0' }, /TALLY_SCHEDULER_MAX_PERIODS_PER_RUN/],
  ])('rejects %j, naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});
