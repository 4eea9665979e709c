import type { Redis } from 'ioredis';
import pino from 'pino';
import { createGenerationStore, GenerationStore } from './generationStore';
import { AsideBuild, AsideGenerationLeftError, startAsideBuild } from './startAsideBuild';
import { createTestRedis, TestRedis } from './testing/testRedis';

jest.setTimeout(60_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

describe('startAsideBuild (Redis)', () => {
  let testRedis: TestRedis;
  let redis: Redis;
  let store: GenerationStore;
  /** Every build a test started: a failed test's would beat on for ever. */
  let builds: AsideBuild[];

  beforeEach(() => {
    testRedis = createTestRedis('aside-build');
    redis = testRedis.connect();
    store = createGenerationStore({ redis, keyPrefix: testRedis.keyPrefix });
    builds = [];
  });

  afterEach(async () => {
    jest.restoreAllMocks();
    for (const build of builds) await build.discard().catch(() => undefined);
    await testRedis.close();
  });

  const start = async (on: GenerationStore = store) => {
    const build = await startAsideBuild(on, logger);
    builds.push(build);
    return build;
  };
  const keysOf = async (generation: string) => (await testRedis.keys()).filter((key) => key.startsWith(`${store.keys.generationRoot(generation)}:`)).sort();

  /** Runs `work` on a host whose clock is `offsetMs` off. */
  async function withClockOff<T>(offsetMs: number, work: () => Promise<T>): Promise<T> {
    const now = Date.now.bind(Date);
    const clock = jest.spyOn(Date, 'now').mockImplementation(() => now() + offsetMs);
    try {
      return await work();
    } finally {
      clock.mockRestore();
    }
  }

  it("sweeps no live build whatever the hosts' clocks say: beats and the cutoff are Redis's time", async () => {
    // A builder whose clock runs five minutes late, then a sweeper whose clock runs five minutes early.
    const late = await withClockOff(-5 * 60_000, () => start());
    const onTime = await start();
    const lateKeys = await keysOf(late.generation);
    const onTimeKeys = await keysOf(onTime.generation);
    expect(lateKeys).not.toEqual([]);
    const early = await withClockOff(5 * 60_000, () => start(createGenerationStore({ redis: testRedis.connect(), keyPrefix: testRedis.keyPrefix })));
    expect(await keysOf(late.generation)).toEqual(lateKeys);
    expect(await keysOf(onTime.generation)).toEqual(onTimeKeys);
    expect((await redis.zrange(store.keys.building, 0, -1)).sort()).toEqual([late.generation, onTime.generation, early.generation].sort());
    for (const build of [late, onTime, early]) await build.discard();
    expect(await testRedis.keys()).toEqual([]);
  });

  it('throws an AsideGenerationLeftError naming the generation and how to delete it when a discard cannot delete it', async () => {
    const build = await start();
    jest.spyOn(redis, 'unlink').mockRejectedValue(new Error('connection lost while deleting'));
    const error = await build.discard().then(() => undefined, (thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(AsideGenerationLeftError);
    expect(error).toMatchObject({ generation: build.generation });
    expect((error as Error).message).toContain(`${build.generation}, could not be deleted (connection lost while deleting)`);
    expect((error as Error).message).toContain(`redis-cli --scan --pattern '${store.keys.generationPattern(build.generation)}' | xargs redis-cli unlink`);
  });
});
