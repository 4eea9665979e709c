import { createPostgresCatalogStore, type CatalogStore } from '@tally/catalog';
import {
  availableOf,
  balanceStreamId,
  HoldNotExpiredError,
  HoldNotOpenError,
  InsufficientCreditsError,
  InvalidAmountError,
  MICROS_PER_CREDIT,
  type OpenBalance,
} from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { isTransientError, retry } from '@tally/runtime';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { HoldNotFoundError, IdempotencyKeyReusedError } from './ledgerErrors';
import { createLedgerService, type LedgerService } from './ledgerService';
import { createPostgresBalanceRegistry } from './postgresBalanceRegistry';
import { createPostgresBalanceStateStore } from './postgresBalanceStateStore';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const credits = (n: number): bigint => BigInt(n) * MICROS_PER_CREDIT;

describe('holds through the ledger service (PostgreSQL)', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let catalog: CatalogStore;
  let now = new Date('2026-03-01T12:00:00.000Z');
  const clock = () => now;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'holds', max: 12 });
    eventStore = createPostgresEventStore({ pool: db.pool, logger });
    catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    await catalog.createProduct({ id: 'p', name: 'p', description: '', consumption: [], lowBalanceThreshold: null, bundles: [] });
  });

  afterAll(async () => {
    await eventStore?.close();
    await db?.drop();
  });

  /** One process's ledger: its own cache, the shared store and snapshot table. */
  const ledgerProcess = (): LedgerService =>
    createLedgerService({ eventStore, catalog, balanceRegistry: createPostgresBalanceRegistry({ pool: db.pool }), logger, clock, stateStore: createPostgresBalanceStateStore({ pool: db.pool }) });

  let customer = 0;
  async function openBalance(ledger: LedgerService, starting: bigint, overdraftLimit?: bigint): Promise<string> {
    customer += 1;
    const opened = await ledger.openBalance({
      customerId: `c-${customer}`,
      productId: 'p',
      startingBalance: starting,
      ...(overdraftLimit !== undefined ? { overdraftLimit } : {}),
    });
    return opened.balance.balanceId;
  }

  async function streamTypes(balanceId: string): Promise<string[]> {
    return (await eventStore.readStream(balanceStreamId(balanceId))).map((event) => event.type);
  }

  const inAnHour = { inSeconds: 3600 };

  it('grants exactly the holds that fit when 50 race for a balance that fits 10, across two processes', async () => {
    const processes = [ledgerProcess(), ledgerProcess()];
    const balanceId = await openBalance(processes[0]!, credits(10));
    const outcomes = await Promise.allSettled(
      Array.from({ length: 50 }, (_, index) =>
        processes[index % 2]!.placeHold(balanceId, { credits: credits(1), expires: inAnHour, reference: `job-${index}` }, { idempotencyKey: `k-${index}` }),
      ),
    );
    const granted = outcomes.filter((outcome) => outcome.status === 'fulfilled');
    const refused = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason as unknown] : []));
    expect(granted).toHaveLength(10);
    expect(refused).toHaveLength(40);
    for (const error of refused) expect(error).toBeInstanceOf(InsufficientCreditsError);
    // Every grant saw available at or above zero after it: decided on the stream's revision.
    for (const outcome of granted) expect(availableOf((outcome as PromiseFulfilledResult<{ balance: OpenBalance }>).value.balance) >= 0n).toBe(true);
    const { balance } = await ledgerProcess().getBalance(balanceId);
    expect(balance).toMatchObject({ balance: credits(10), held: credits(10) });
    expect(Object.keys(balance.holds)).toHaveLength(10);
    expect((await streamTypes(balanceId)).filter((type) => type === 'CreditsHeld')).toHaveLength(10);
  });

  it('lets 50 racing holds take available down to −overdraftLimit and no further', async () => {
    const ledger = ledgerProcess();
    const balanceId = await openBalance(ledger, credits(10), credits(5));
    const outcomes = await Promise.allSettled(
      Array.from({ length: 50 }, (_, index) => ledger.placeHold(balanceId, { credits: credits(1), expires: inAnHour, reference: null }, { idempotencyKey: `o-${index}` })),
    );
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(15);
    const { balance } = await ledger.getBalance(balanceId);
    expect(availableOf(balance)).toBe(-credits(5));
  });

  it('answers a repeated placement with the hold it made, and refuses the key with another request', async () => {
    const ledger = ledgerProcess();
    const balanceId = await openBalance(ledger, credits(10));
    const request = { credits: credits(3), expires: inAnHour, reference: 'render' };
    const first = await ledger.placeHold(balanceId, request, { idempotencyKey: 'job:1', requestHash: 'h1' });
    const again = await ledgerProcess().placeHold(balanceId, request, { idempotencyKey: 'job:1', requestHash: 'h1' });
    expect(again).toMatchObject({ holdId: first.holdId, replayed: true });
    expect(again.events.map((e) => e.eventId)).toEqual(first.events.map((e) => e.eventId));
    await expect(ledger.placeHold(balanceId, { ...request, credits: credits(4) }, { idempotencyKey: 'job:1', requestHash: 'h2' })).rejects.toThrow(
      IdempotencyKeyReusedError,
    );
    expect((await ledger.getBalance(balanceId)).balance.held).toBe(credits(3));
  });

  it('captures in full and in part, exactly and once; a released hold cannot be captured', async () => {
    const ledger = ledgerProcess();
    const balanceId = await openBalance(ledger, credits(10));
    const full = await ledger.placeHold(balanceId, { credits: credits(4), expires: inAnHour, reference: null }, { idempotencyKey: 'full' });
    const part = await ledger.placeHold(balanceId, { credits: credits(3), expires: inAnHour, reference: null }, { idempotencyKey: 'part' });
    const free = await ledger.placeHold(balanceId, { credits: credits(2), expires: inAnHour, reference: null }, { idempotencyKey: 'free' });
    expect((await ledger.getBalance(balanceId)).balance).toMatchObject({ balance: credits(10), held: credits(9) });

    const captured = await ledger.captureHold(full.holdId, { reason: null });
    expect(captured.balance).toMatchObject({ balance: credits(6), held: credits(5) });
    await expect(ledger.captureHold(part.holdId, { credits: credits(3) + 1n, reason: null })).rejects.toThrow(InvalidAmountError);
    const partial = await ledger.captureHold(part.holdId, { credits: 1_250_000n, reason: 'render finished early' });
    expect(partial.balance).toMatchObject({ balance: credits(6) - 1_250_000n, held: credits(2) });
    expect(partial.events.map((e) => e.event.type)).toEqual(['CreditConsumed', 'HoldCaptured']);
    expect(partial.events[1]!.event).toMatchObject({ credits: 1_250_000n, released: 1_750_000n });

    const released = await ledger.releaseHold(free.holdId, { reason: 'cancelled' });
    expect(released.balance).toMatchObject({ balance: credits(6) - 1_250_000n, held: 0n });

    // Idempotent: the same capture or release again answers the first one and appends nothing.
    const revision = (await ledger.getBalance(balanceId)).revision;
    expect(await ledgerProcess().captureHold(full.holdId, { reason: null })).toMatchObject({ replayed: true, balance: captured.balance });
    expect(await ledger.releaseHold(free.holdId, { reason: 'cancelled' })).toMatchObject({ replayed: true });
    expect((await ledger.getBalance(balanceId)).revision).toBe(revision);
    // The same release with another reason is refused as the hold freed, not as a key reused.
    await expect(ledger.releaseHold(free.holdId, { reason: 'changed my mind' }, { requestHash: 'another' })).rejects.toMatchObject({
      code: 'hold_not_open',
      message: `hold ${free.holdId} is not open: it was released already; a release asking for another reason is refused`,
    });

    // Other operations on a freed hold are refused.
    await expect(ledger.captureHold(free.holdId, { reason: null })).rejects.toThrow(HoldNotOpenError);
    await expect(ledger.releaseHold(full.holdId, { reason: null })).rejects.toThrow(HoldNotOpenError);
  });

  it('captures without an amount in one registry lookup and no read of the placement, hashed as naming the whole hold', async () => {
    const calls = new Map<string, number>();
    /** Counts each method call: one a round trip to PostgreSQL for these two. */
    const counting = <T extends object>(target: T, prefix: string): T =>
      new Proxy(target, {
        get(object, key) {
          const value: unknown = Reflect.get(object, key);
          if (typeof value !== 'function') return value;
          return (...args: unknown[]) => {
            calls.set(`${prefix}.${String(key)}`, (calls.get(`${prefix}.${String(key)}`) ?? 0) + 1);
            return (value as (...a: unknown[]) => unknown).apply(object, args);
          };
        },
      });
    const ledger = createLedgerService({
      eventStore: counting(eventStore, 'eventStore'),
      catalog,
      balanceRegistry: counting(createPostgresBalanceRegistry({ pool: db.pool }), 'registry'),
      logger,
      clock,
    });
    const balanceId = await openBalance(ledger, credits(10));
    const held = await ledger.placeHold(balanceId, { credits: credits(4), expires: inAnHour, reference: null }, { idempotencyKey: 'counted' });
    const hashOf = (amount: bigint) => `captured ${amount}`;
    calls.clear();
    const captured = await ledger.captureHold(held.holdId, { reason: null }, { requestHash: hashOf });
    // The hold's balance once, the earlier runs, the stream's tail, the append and its read back:
    // the amount comes from the HoldCaptured the decider made of the state it loaded anyway.
    expect(Object.fromEntries(calls)).toEqual({
      'registry.getBalance': 1,
      'eventStore.readEventsById': 2,
      'eventStore.readStream': 1,
      'eventStore.appendMany': 1,
    });
    expect(captured.events.map((e) => [e.event.type, e.metadata.requestHash])).toEqual([
      ['CreditConsumed', hashOf(credits(4))],
      ['HoldCaptured', hashOf(credits(4))],
    ]);
    // The same request named in full, and again without an amount, from a process that never saw the hold: replays.
    const cold = ledgerProcess();
    expect(await cold.captureHold(held.holdId, { credits: credits(4), reason: null }, { requestHash: hashOf })).toMatchObject({ replayed: true });
    expect(await cold.captureHold(held.holdId, { reason: null }, { requestHash: hashOf })).toMatchObject({ replayed: true });
    // Another amount: the hold is captured, which is what the refusal says (a capture has no key to have reused).
    await expect(cold.captureHold(held.holdId, { credits: credits(3), reason: null }, { requestHash: hashOf })).rejects.toMatchObject({
      code: 'hold_not_open',
      message: `hold ${held.holdId} is not open: it was captured already (4 credits charged); a capture asking for another amount or reason is refused`,
    });
  });

  it('answers a capture without an amount after one of part of the hold as another request', async () => {
    const ledger = ledgerProcess();
    const balanceId = await openBalance(ledger, credits(10));
    const held = await ledger.placeHold(balanceId, { credits: credits(4), expires: inAnHour, reference: null }, { idempotencyKey: 'part-first' });
    const hashOf = (amount: bigint) => `captured ${amount}`;
    await ledger.captureHold(held.holdId, { credits: credits(1), reason: null }, { requestHash: hashOf });
    // Without an amount it is all 4 credits held: not the capture of 1 stored under the hold.
    await expect(ledgerProcess().captureHold(held.holdId, { reason: null }, { requestHash: hashOf })).rejects.toThrow(HoldNotOpenError);
    expect(await ledger.captureHold(held.holdId, { credits: credits(1), reason: null }, { requestHash: hashOf })).toMatchObject({ replayed: true });
  });

  it('says "not found" for a hold never placed or an id Tally never made', async () => {
    const ledger = ledgerProcess();
    const balanceId = await openBalance(ledger, credits(1));
    await expect(ledger.captureHold(`${balanceId}:never`, { reason: null })).rejects.toThrow(HoldNotFoundError);
    await expect(ledger.releaseHold('not-a-hold', { reason: null })).rejects.toThrow(HoldNotFoundError);
    await expect(ledger.releaseHold('no-such-balance:k', { reason: null })).rejects.toThrow(HoldNotFoundError);
  });

  it('expires a hold once, only at or after its expiresAt, and capture and release are refused from then on', async () => {
    const ledger = ledgerProcess();
    const balanceId = await openBalance(ledger, credits(10));
    const hold = await ledger.placeHold(balanceId, { credits: credits(6), expires: { inSeconds: 60 }, reference: null }, { idempotencyKey: 'exp' });
    await expect(ledger.expireHold(hold.holdId)).rejects.toThrow(HoldNotExpiredError);
    now = new Date(now.getTime() + 60_000);
    try {
      await expect(ledger.captureHold(hold.holdId, { reason: null })).rejects.toThrow(HoldNotOpenError);
      // Expired for a release too, so the ledger records its HoldExpired below, not a client's release.
      await expect(ledger.releaseHold(hold.holdId, { reason: null })).rejects.toThrow(`hold ${hold.holdId} expired at `);
      const [a, b] = await Promise.all([ledger.expireHold(hold.holdId), ledgerProcess().expireHold(hold.holdId)]);
      expect([a.replayed, b.replayed].sort()).toEqual([false, true]);
      expect(a.balance).toMatchObject({ balance: credits(10), held: 0n });
      expect((await streamTypes(balanceId)).filter((type) => type === 'HoldExpired')).toHaveLength(1);
    } finally {
      now = new Date('2026-03-01T12:00:00.000Z');
    }
  });

  /** A ledger process whose first look for earlier runs lets `meanwhile` store the same command first: the race of two retries. */
  function racingProcess(meanwhile: () => Promise<unknown>): LedgerService {
    let raced = false;
    const racing: EventStore = {
      ...eventStore,
      async readEventsById(ids) {
        const found = await eventStore.readEventsById(ids);
        if (!raced) {
          raced = true;
          await meanwhile();
        }
        return found;
      },
    };
    return createLedgerService({ eventStore: racing, catalog, balanceRegistry: createPostgresBalanceRegistry({ pool: db.pool }), logger, clock });
  }

  it('frees each hold once when a capture races its expiry from another process: captured or expired, never both', async () => {
    // Two processes, their own caches and clocks: the API's a moment before the holds expire, the scheduler's at their expiry.
    const at = (ms: number) => () => new Date(now.getTime() + ms);
    const processAt = (processClock: () => Date) =>
      createLedgerService({ eventStore, catalog, balanceRegistry: createPostgresBalanceRegistry({ pool: db.pool }), logger, clock: processClock, stateStore: createPostgresBalanceStateStore({ pool: db.pool }) });
    const placer = processAt(at(0));
    const api = processAt(at(59_999));
    const scheduler = processAt(at(60_000));
    const balanceId = await openBalance(placer, credits(1000));
    const holdIds: string[] = [];
    for (let i = 0; i < 30; i += 1) {
      holdIds.push((await placer.placeHold(balanceId, { credits: credits(10), expires: { inSeconds: 60 }, reference: null }, { idempotencyKey: `race-${i}` })).holdId);
    }
    // Each retried while the store is unavailable (a pool this busy may time out), as its caller would: only refusals count.
    const asCaller = <T>(what: string, command: () => Promise<T>) => retry(command, { what, isTransient: isTransientError, maxDelayMs: 200, deadlineMs: 60_000 });
    const outcomes = await Promise.all(
      holdIds.map((holdId) =>
        Promise.allSettled([
          asCaller('capture', () => api.captureHold(holdId, { credits: credits(3), reason: null })),
          asCaller('expiry', () => scheduler.expireHold(holdId)),
        ]),
      ),
    );
    const captured = outcomes.filter(([capture]) => capture.status === 'fulfilled').length;
    for (const [capture, expiry] of outcomes) {
      // Exactly one wins; the other is refused as the hold is no longer open, nothing else.
      expect([capture.status, expiry.status].sort()).toEqual(['fulfilled', 'rejected']);
      const refused = capture.status === 'rejected' ? capture.reason : (expiry as PromiseRejectedResult).reason;
      expect(refused).toBeInstanceOf(HoldNotOpenError);
    }
    const types = await streamTypes(balanceId);
    expect([types.filter((type) => type === 'HoldCaptured').length, types.filter((type) => type === 'HoldExpired').length]).toEqual([captured, holdIds.length - captured]);
    for (const ledger of [placer, api, scheduler]) {
      const { balance } = await ledger.getBalance(balanceId);
      expect(balance).toMatchObject({ held: 0n, balance: credits(1000) - BigInt(captured) * credits(3), holds: {} });
    }
  });

  it('answers a placement or an expiry stored by a racing twin as a replay, not as a refusal', async () => {
    const ledger = ledgerProcess();
    const balanceId = await openBalance(ledger, credits(10));
    const request = { credits: credits(2), expires: { inSeconds: 60 }, reference: null };
    const placed = await racingProcess(() => ledger.placeHold(balanceId, request, { idempotencyKey: 'twin' })).placeHold(balanceId, request, {
      idempotencyKey: 'twin',
    });
    expect(placed.replayed).toBe(true);
    now = new Date(now.getTime() + 60_000);
    try {
      const expired = await racingProcess(() => ledger.expireHold(placed.holdId)).expireHold(placed.holdId);
      expect(expired).toMatchObject({ replayed: true, balance: { held: 0n } });
      expect((await streamTypes(balanceId)).filter((type) => type === 'HoldExpired')).toHaveLength(1);
    } finally {
      now = new Date('2026-03-01T12:00:00.000Z');
    }
  });

  it('sets the overdraft limit at open and by a settings change', async () => {
    const ledger = ledgerProcess();
    const balanceId = await openBalance(ledger, 0n, credits(2));
    await ledger.placeHold(balanceId, { credits: credits(2), expires: inAnHour, reference: null }, { idempotencyKey: 'a' });
    await expect(ledger.placeHold(balanceId, { credits: 1n, expires: inAnHour, reference: null }, { idempotencyKey: 'b' })).rejects.toThrow(
      InsufficientCreditsError,
    );
    await ledger.changeSettings(balanceId, { overdraftLimit: credits(3) });
    await ledger.placeHold(balanceId, { credits: credits(1), expires: inAnHour, reference: null }, { idempotencyKey: 'b' });
    expect((await ledger.getBalance(balanceId)).balance).toMatchObject({ overdraftLimit: credits(3), held: credits(3) });
  });
});
