import { BALANCE_FOLD_VERSION } from '@tally/domain';
import type { Redis } from 'ioredis';
import type { BalanceSnapshot } from './balanceSnapshot';
import { createBalanceReadModel } from './balanceReadModel';
import { createGenerationStore, GenerationStore, NewerProjectionError } from './generationStore';
import { createTestRedis, TestRedis } from './testing/testRedis';

const snapshot = (balanceId: string, position: bigint, balance: string): BalanceSnapshot => ({
  balanceId,
  customerId: 'c-1',
  productId: 'p-1',
  name: 'Main',
  balance,
  held: '0',
  available: balance,
  overdraftLimit: '0',
  holds: '{}',
  lowBalanceThreshold: null,
  belowThreshold: false,
  revision: '0',
  position: position.toString(),
  updatedAt: '2026-01-01T00:00:00.000Z',
});

jest.setTimeout(60_000);

describe('generation store (Redis)', () => {
  let testRedis: TestRedis;
  let redis: Redis;
  let store: GenerationStore;

  beforeEach(() => {
    testRedis = createTestRedis('generation-store');
    redis = testRedis.connect();
    store = createGenerationStore({ redis, keyPrefix: testRedis.keyPrefix });
  });

  afterEach(() => testRedis.close());

  const stored = async (generation: string, balanceId: string) =>
    redis.hgetall(store.keys.balance(generation, balanceId));

  it('creates an active generation at 0 once, finds it again, and replaces it when told to start over', async () => {
    const first = await store.ensureActive(0n);
    expect(first).toMatchObject({ checkpoint: 0n, created: true, abandoned: undefined });
    await expect(store.ensureActive(0n)).resolves.toEqual({ ...first, created: false });
    await expect(redis.get(store.keys.active)).resolves.toBe(first.generation);
    const over = await store.ensureActive(0n, { startOver: true });
    expect(over).toMatchObject({ checkpoint: 0n, created: true, abandoned: first.generation });
    await expect(redis.get(store.keys.active)).resolves.toBe(over.generation);
  });

  it('makes a generation anew when the active one was folded by an older release, and refuses one folded by a newer release', async () => {
    const first = await store.ensureActive(0n);
    await store.writeBatch(first.generation, 'live', [snapshot('a', 5n, '1')], 5n);
    await expect(redis.get(store.keys.version(first.generation))).resolves.toBe(String(BALANCE_FOLD_VERSION));
    // Made before generations carried a version: taken as folded by this release.
    await redis.del(store.keys.version(first.generation));
    await expect(store.ensureActive(7n)).resolves.toMatchObject({ generation: first.generation, checkpoint: 5n, created: false });
    await expect(redis.get(store.keys.version(first.generation))).resolves.toBe(String(BALANCE_FOLD_VERSION));

    // An older release's snapshots: folded anew, served only once caught up (its target).
    await redis.set(store.keys.version(first.generation), String(BALANCE_FOLD_VERSION - 1));
    const anew = await store.ensureActive(7n);
    expect(anew).toMatchObject({ checkpoint: 0n, created: true, abandoned: first.generation, outdated: true });
    await expect(redis.get(store.keys.target(anew.generation))).resolves.toBe('7');

    // A newer release's: this one neither writes to it nor replaces it.
    await redis.set(store.keys.version(anew.generation), String(BALANCE_FOLD_VERSION + 1));
    await expect(store.ensureActive(7n)).rejects.toThrow(NewerProjectionError);
    await expect(store.ensureActive(7n, { startOver: true })).rejects.toThrow(NewerProjectionError);
    await expect(redis.get(store.keys.active)).resolves.toBe(anew.generation);
    const aside = await store.createAside();
    await store.writeBatch(aside, 'aside', [], 10n);
    await expect(store.switchActive(aside)).resolves.toEqual({ kind: 'newer' });
    await expect(redis.get(store.keys.active)).resolves.toBe(anew.generation);
  });

  it("answers 'rewound' and writes nothing when the checkpoint is below what the writer wrote (Redis went back in time)", async () => {
    const { generation } = await store.ensureActive(0n);
    await expect(store.writeBatch(generation, 'live', [snapshot('a', 10n, '5')], 10n, 0n)).resolves.toBe('ok');
    await expect(store.writeBatch(generation, 'live', [snapshot('a', 20n, '6')], 20n, 10n)).resolves.toBe('ok');
    await expect(store.checkGeneration(generation, 'live', 20n)).resolves.toBe('ok');
    // A restore of an older snapshot: the checkpoint and the snapshot are back at 10.
    await redis.set(store.keys.checkpoint(generation), '10');
    await redis.hset(store.keys.balance(generation, 'a'), 'balance', '5', 'position', '10');

    await expect(store.checkGeneration(generation, 'live', 20n)).resolves.toBe('rewound');
    await expect(store.writeBatch(generation, 'live', [snapshot('a', 30n, '7')], 30n, 20n)).resolves.toBe('rewound');
    expect(await redis.get(store.keys.checkpoint(generation))).toBe('10');
    expect(await stored(generation, 'a')).toMatchObject({ balance: '5', position: '10' });
    // A writer that goes on from the restored checkpoint (or knows no position) writes again.
    await expect(store.writeBatch(generation, 'live', [snapshot('a', 20n, '6')], 20n, 10n)).resolves.toBe('ok');
    await expect(store.writeBatch(generation, 'live', [snapshot('a', 30n, '7')], 30n)).resolves.toBe('ok');
    expect(await redis.get(store.keys.checkpoint(generation))).toBe('30');
    // Beyond 2^53 the comparison is exact too.
    await redis.set(store.keys.checkpoint(generation), (2n ** 53n).toString());
    await expect(store.checkGeneration(generation, 'live', 2n ** 53n + 1n)).resolves.toBe('rewound');
    await expect(store.checkGeneration(generation, 'live', 2n ** 53n)).resolves.toBe('ok');
  });

  it('records freshness only while the checkpoint is not below what the projector wrote: rolled-back figures are not fresh', async () => {
    const { generation } = await store.ensureActive(0n);
    const freshAsOf = () => redis.get(store.keys.freshAsOf(generation));
    await store.writeBatch(generation, 'live', [], 2n ** 53n + 1n);
    await store.markFresh(generation, 1000, 2n ** 53n + 1n);
    await expect(freshAsOf()).resolves.toBe('1000');
    // A restore of an older snapshot: checkpoint and freshness as they were then.
    await redis.set(store.keys.checkpoint(generation), (2n ** 53n).toString());
    await redis.set(store.keys.freshAsOf(generation), '500');
    await store.markFresh(generation, 2000, 2n ** 53n + 1n);
    await expect(freshAsOf()).resolves.toBe('500');
    // A projector going on from the restored checkpoint (or one that knows no position) marks again.
    await store.markFresh(generation, 3000, 2n ** 53n);
    await expect(freshAsOf()).resolves.toBe('3000');
    await store.markFresh(generation, 4000);
    await expect(freshAsOf()).resolves.toBe('4000');
    // A generation that vanished gets no key that its deletion would never remove.
    await testRedis.deleteAll();
    await store.markFresh(generation, 5000, 0n);
    await expect(testRedis.keys()).resolves.toEqual([]);
  });

  it('puts a balance back in its customer index whenever it writes the balance, so a lost index set comes back', async () => {
    const { generation } = await store.ensureActive(0n);
    await store.writeBatch(generation, 'live', [snapshot('a', 1n, '1'), snapshot('b', 1n, '1')], 1n);
    // Evicted, or deleted by hand: the hashes stay.
    await redis.del(store.keys.customer(generation, 'c-1'));
    await store.writeBatch(generation, 'live', [snapshot('a', 2n, '2')], 2n);
    expect(await redis.smembers(store.keys.customer(generation, 'c-1'))).toEqual(['a']);
    await store.writeBatch(generation, 'live', [snapshot('b', 3n, '2')], 3n);
    expect((await redis.smembers(store.keys.customer(generation, 'c-1'))).sort()).toEqual(['a', 'b']);
  });

  it('writes a snapshot only above its stored position, comparing positions beyond 2^53 exactly', async () => {
    const { generation } = await store.ensureActive(0n);
    // 2^53 + 1 and 2^53 are the same double: a Lua number comparison would take one for the other.
    const high = 2n ** 53n + 1n;
    await expect(store.writeBatch(generation, 'live', [snapshot('b', high, '10')], high)).resolves.toBe('ok');
    await store.writeBatch(generation, 'live', [snapshot('b', high - 1n, 'stale')], high);
    await store.writeBatch(generation, 'live', [snapshot('b', high, 'again')], high);
    expect(await stored(generation, 'b')).toMatchObject({ balance: '10', position: high.toString() });

    await store.writeBatch(generation, 'live', [snapshot('b', high + 1n, '11')], high + 1n);
    expect(await stored(generation, 'b')).toMatchObject({ balance: '11', position: (high + 1n).toString() });
    // Longer digit strings are greater whatever their first digits; shorter ones are not.
    await store.writeBatch(generation, 'live', [snapshot('b', 99999999999999999n, 'shorter')], high);
    await store.writeBatch(generation, 'live', [snapshot('b', 10n ** 17n, 'longer')], 10n ** 17n);
    expect(await stored(generation, 'b')).toMatchObject({ balance: 'longer', position: (10n ** 17n).toString() });
    expect(await redis.smembers(store.keys.customer(generation, 'c-1'))).toEqual(['b']);
  });

  it('only moves the checkpoint forward', async () => {
    const { generation } = await store.ensureActive(0n);
    await store.writeBatch(generation, 'live', [], 2n ** 60n);
    await store.writeBatch(generation, 'live', [], 2n ** 60n - 1n);
    await expect(redis.get(store.keys.checkpoint(generation))).resolves.toBe((2n ** 60n).toString());
  });

  it('refuses a live write when another generation is active, and writes aside regardless', async () => {
    const { generation } = await store.ensureActive(0n);
    const aside = await store.createAside();
    await expect(store.writeBatch(aside, 'live', [snapshot('b', 1n, '1')], 1n)).resolves.toBe('stale');
    await expect(store.writeBatch(aside, 'aside', [snapshot('b', 1n, '1')], 1n)).resolves.toBe('ok');
    await expect(store.switchActive(aside)).resolves.toEqual({ kind: 'switched', previous: generation });
    await expect(store.writeBatch(generation, 'live', [snapshot('b', 2n, '2')], 2n)).resolves.toBe('stale');
    expect(await stored(generation, 'b')).toEqual({});
  });

  it('answers reset, writing nothing, once the active pointer or the checkpoint is gone', async () => {
    const { generation } = await store.ensureActive(0n);
    await redis.del(store.keys.checkpoint(generation));
    await expect(store.writeBatch(generation, 'live', [snapshot('b', 1n, '1')], 1n)).resolves.toBe('reset');
    await expect(store.checkGeneration(generation, 'live')).resolves.toBe('reset');
    expect(await stored(generation, 'b')).toEqual({});

    const fresh = await store.ensureActive(0n);
    expect(fresh).toMatchObject({ checkpoint: 0n, created: true, abandoned: generation });
    await testRedis.deleteAll();
    await expect(store.writeBatch(fresh.generation, 'live', [], 1n)).resolves.toBe('reset');
    await expect(store.writeBatch(fresh.generation, 'aside', [], 1n)).resolves.toBe('reset');
  });

  it('deletes one generation and leaves the others alone', async () => {
    const { generation } = await store.ensureActive(0n);
    const aside = await store.createAside();
    const many = Array.from({ length: 2500 }, (_, index) => snapshot(`b-${index}`, 1n, '1'));
    await store.writeBatch(aside, 'aside', many, 1n);
    await store.writeBatch(generation, 'live', [snapshot('kept', 1n, '1')], 1n);

    const ids = new Set<string>();
    for await (const chunk of store.scanBalanceIds(aside)) chunk.forEach((id) => ids.add(id));
    expect(ids.size).toBe(2500);

    await expect(store.deleteGeneration(aside)).resolves.toBe(2500 + 3);
    expect((await testRedis.keys()).sort()).toEqual(
      [
        store.keys.active,
        store.keys.checkpoint(generation),
        store.keys.target(generation),
        store.keys.version(generation),
        store.keys.balance(generation, 'kept'),
        store.keys.customer(generation, 'c-1'),
      ].sort(),
    );
  });

  it('will not switch to a generation behind the live one, so readers never go back in time', async () => {
    const { generation } = await store.ensureActive(0n);
    await store.writeBatch(generation, 'live', [], 2n ** 53n + 1n);
    const aside = await store.createAside();
    await store.writeBatch(aside, 'aside', [], 2n ** 53n);
    await expect(store.switchActive(aside)).resolves.toEqual({ kind: 'behind' });
    await store.writeBatch(aside, 'aside', [], 2n ** 53n + 1n);
    await expect(store.switchActive(aside)).resolves.toEqual({ kind: 'switched', previous: generation });
    await expect(redis.get(store.keys.active)).resolves.toBe(aside);
  });

  it('replaces, with its freshAsOf, only the live generation named as projected from another store, never a newer release\'s', async () => {
    const { generation } = await store.ensureActive(50n);
    await store.writeBatch(generation, 'live', [], 40n);
    const aside = await store.createAside();
    await store.writeBatch(aside, 'aside', [], 3n);
    // Named a generation that no longer serves (another process replaced it meanwhile): compared as usual.
    await expect(store.switchActive(aside, { over: 'gother' })).resolves.toEqual({ kind: 'behind' });
    await redis.set(store.keys.version(generation), String(BALANCE_FOLD_VERSION + 1));
    await expect(store.switchActive(aside, { over: generation })).resolves.toEqual({ kind: 'newer' });
    await redis.set(store.keys.version(generation), String(BALANCE_FOLD_VERSION));
    await expect(redis.get(store.keys.freshAsOf(aside))).resolves.toBeNull();
    // Above its checkpoint and short of its target, replaced all the same once named.
    await expect(store.switchActive(aside, { over: generation, freshAsOf: 1234.5 })).resolves.toEqual({ kind: 'switched', previous: generation });
    await expect(redis.get(store.keys.active)).resolves.toBe(aside);
    await expect(redis.get(store.keys.freshAsOf(aside))).resolves.toBe('1234');
  });

  it('serves a generation it made only once its checkpoint reaches the target, comparing beyond 2^53 exactly', async () => {
    const readModel = createBalanceReadModel({ redis, keyPrefix: testRedis.keyPrefix });
    const target = 2n ** 53n + 1n;
    // No generation at all (flushed): nothing served.
    await expect(readModel.servedCheckpoint()).resolves.toBeUndefined();
    const { generation } = await store.ensureActive(target);
    await store.raiseTarget(generation, target - 1n);
    await expect(redis.get(store.keys.target(generation))).resolves.toBe(target.toString());
    await store.writeBatch(generation, 'live', [snapshot('a', 2n ** 53n, '5')], 2n ** 53n);
    await expect(readModel.getBalance('a')).resolves.toBeUndefined();
    await expect(readModel.getCustomerBalances('c-1')).resolves.toEqual([]);
    await expect(readModel.getEntitlement('c-1', 'p-1')).resolves.toEqual({ snapshot: undefined, checkpoint: 0n, freshAsOf: undefined });
    // Its checkpoint (2^53) is the rebuild's, not one readers are served at.
    await expect(readModel.servedCheckpoint()).resolves.toBeUndefined();
    // Nor will a replay switch in below it: what the lost generation served may reach up to there.
    const aside = await store.createAside();
    await store.writeBatch(aside, 'aside', [], target - 1n);
    await expect(store.switchActive(aside)).resolves.toEqual({ kind: 'behind' });
    await store.deleteGeneration(aside);

    await store.writeBatch(generation, 'live', [snapshot('a', target, '6')], target);
    await expect(readModel.getBalance('a')).resolves.toMatchObject({ balance: '6', position: target.toString() });
    await expect(readModel.getCustomerBalances('c-1')).resolves.toMatchObject([{ balance: '6' }]);
    await expect(readModel.getEntitlement('c-1', 'p-1')).resolves.toMatchObject({ snapshot: { balance: '6' }, checkpoint: target });
    await expect(readModel.servedCheckpoint()).resolves.toBe(target);
    // Raised past the checkpoint (a head read after the generation was made, or what the projector
    // wrote before a rollback): served again once there.
    await store.raiseTarget(generation, target + 1n);
    await expect(readModel.getBalance('a')).resolves.toBeUndefined();
    await expect(readModel.servedCheckpoint()).resolves.toBeUndefined();
    // A generation without one (a replay's) is given one; one that vanished is given none.
    const replayed = await store.createAside();
    await store.raiseTarget(replayed, 5n);
    await expect(redis.get(store.keys.target(replayed))).resolves.toBe('5');
    await store.deleteGeneration(replayed);
    await store.raiseTarget(replayed, 6n);
    await expect(redis.exists(store.keys.target(replayed))).resolves.toBe(0);
  });

  it('will not switch to a generation whose keys vanished', async () => {
    const aside = await store.createAside();
    await redis.del(store.keys.checkpoint(aside));
    await expect(store.switchActive(aside)).resolves.toEqual({ kind: 'reset' });
    await expect(redis.get(store.keys.active)).resolves.toBeNull();
  });

  describe('aside generations being built, and the sweep of those whose builder went silent', () => {
    const silentFor = 60_000;
    const keysOf = async (generation: string) => (await testRedis.keys()).filter((key) => key.startsWith(`${store.keys.generationRoot(generation)}:`)).sort();

    it('keeps one whose builder beat after an old beat: the beat, not the creation, is what counts', async () => {
      const aside = await store.createAside();
      await store.writeBatch(aside, 'aside', [snapshot('a', 1n, '1')], 1n);
      const before = await keysOf(aside);
      await redis.zadd(store.keys.building, 0, aside);
      await store.beatAside(aside);
      await expect(store.deleteAbandonedAsides(silentFor)).resolves.toEqual([]);
      expect(await keysOf(aside)).toEqual(before);
      await expect(store.isBuilding(aside)).resolves.toBe(true);
    });

    it('claims one silent past the bound before deleting it: its builder, only paused, switching meanwhile is answered reset', async () => {
      const aside = await store.createAside();
      await store.writeBatch(aside, 'aside', [snapshot('a', 1n, '1')], 1n);
      await redis.zadd(store.keys.building, 0, aside);
      // The sweeper's client: its builder switches right when the sweep starts deleting the keys.
      const sweeping = testRedis.connect();
      const scan = sweeping.scan.bind(sweeping) as (...args: unknown[]) => Promise<[string, string[]]>;
      const switched: unknown[] = [];
      (sweeping as unknown as { scan: (...args: unknown[]) => Promise<[string, string[]]> }).scan = async (...args) => {
        if (switched.length === 0) switched.push(await store.switchActive(aside));
        return scan(...args);
      };
      const sweeper = createGenerationStore({ redis: sweeping, keyPrefix: testRedis.keyPrefix });
      await expect(sweeper.deleteAbandonedAsides(silentFor)).resolves.toEqual([aside]);
      expect(switched).toEqual([{ kind: 'reset' }]);
      await expect(redis.get(store.keys.active)).resolves.toBeNull();
      expect(await keysOf(aside)).toEqual([]);
      await expect(store.isBuilding(aside)).resolves.toBe(false);
      // Its builder was only paused: it finds its generation gone rather than serve half of it.
      await expect(store.writeBatch(aside, 'aside', [snapshot('b', 2n, '1')], 2n)).resolves.toBe('reset');
      await expect(store.switchActive(aside)).resolves.toEqual({ kind: 'reset' });
      await expect(redis.get(store.keys.active)).resolves.toBeNull();
      // Nor does its heartbeat record it again.
      await store.beatAside(aside);
      await expect(store.isBuilding(aside)).resolves.toBe(false);
      expect(await testRedis.keys()).toEqual([]);
    });

    it('never deletes the active generation, however stale its record, and drops that record', async () => {
      const aside = await store.createAside();
      await store.writeBatch(aside, 'aside', [snapshot('a', 1n, '1')], 1n);
      await expect(store.switchActive(aside)).resolves.toEqual({ kind: 'switched', previous: undefined });
      await expect(store.isBuilding(aside)).resolves.toBe(false);
      const before = await keysOf(aside);
      // However it came to be recorded stale (by hand, say): the sweep asks the pointer first.
      await redis.zadd(store.keys.building, 0, aside);
      await expect(store.deleteAbandonedAsides(silentFor)).resolves.toEqual([]);
      expect(await keysOf(aside)).toEqual(before);
      await expect(redis.get(store.keys.active)).resolves.toBe(aside);
      await expect(store.isBuilding(aside)).resolves.toBe(false);
    });
  });
});
