import { createTestSchema, runTallyCommand, stackConfig, uniqueName, type TestSchema } from '@tally/test-support';
import { Redis } from 'ioredis';

jest.setTimeout(120_000);

/** `tally balance` reads the Redis snapshots: it must not answer "no balances" where it has none to read. */
describe('tally balance', () => {
  let db: TestSchema;
  let redis: Redis;
  const keyPrefix = uniqueName('balance_command');

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'balance_command' });
    redis = new Redis(stackConfig.redisUrl);
  });

  afterAll(async () => {
    const keys = await redis.keys(`${keyPrefix}*`);
    if (keys.length > 0) await redis.unlink(...keys);
    await redis.quit();
    await db?.drop();
  });

  const env = () => ({ TALLY_DATABASE_URL: db.connectionString, TALLY_DATABASE_SCHEMA: db.schema, TALLY_REDIS_URL: stackConfig.redisUrl, TALLY_REDIS_KEY_PREFIX: keyPrefix });

  it('says the read model is not served (rebuilding), exit 1, rather than print no balances; once served, an empty list is one', async () => {
    const unserved = await runTallyCommand(['balance', 'cus_nobody'], env());
    expect([unserved.code, unserved.stdout, unserved.stderr]).toEqual([
      1,
      '',
      'tally: the balance read model is not served (being rebuilt, or never built: tally replay); its balances cannot be read now\n',
    ]);
    // A generation built (from an empty ledger) and served: no balances is an answer.
    expect((await runTallyCommand(['replay'], env())).code).toBe(0);
    const served = await runTallyCommand(['balance', 'cus_nobody'], env());
    expect([served.code, JSON.parse(served.stdout)]).toEqual([0, { customerId: 'cus_nobody', items: [] }]);
  });
});
