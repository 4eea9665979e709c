import { randomUUID } from 'node:crypto';
import { createPostgresCatalogStore } from '@tally/catalog';
import { formatCredits, parseCredits, type CreditProduct } from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createMetricsRegistry } from '@tally/metrics';
import { createPool } from '@tally/postgres';
import { createTestSchema, waitFor, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { AUTO_RECHARGE_PROCESSOR, createAutoRechargeProcessor } from './autoRechargeProcessor';
import { createAutoRecharges, SETTINGS_LOCK_CLASS, type AutoRecharges, type AutoRechargeStatus } from './autoRecharges';
import { AutoRechargeNotSetError, BalanceNotFoundError, BundleNotFoundError, WarningLimitNotSetError } from './ledgerErrors';
import { AUTO_RECHARGE_REASON, createLedgerService, type LedgerService } from './ledgerService';
import { createPostgresBalanceRegistry } from './postgresBalanceRegistry';
import { createPurchaseService, type PurchaseService } from './purchaseService';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

/**
 * Auto-recharge against PostgreSQL and the event store: settings checked as the purchase they
 * make, and the processor buying once per low-balance warning, through its subscription.
 */
describe('auto-recharge', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let ledger: LedgerService;
  let purchases: PurchaseService;
  let recharges: AutoRecharges;
  let catalog: ReturnType<typeof createPostgresCatalogStore>;
  const metrics = createMetricsRegistry();
  /** `tally_auto_recharges_total` of this file's processors by outcome, as /metrics renders it. */
  async function outcomes(): Promise<Record<string, number>> {
    const lines = (await metrics.render()).split('\n').filter((line) => line.startsWith('tally_auto_recharges_total{'));
    return Object.fromEntries(lines.map((line) => [/outcome="([a-z_]+)"/.exec(line)![1]!, Number(line.split(' ').at(-1))]));
  }

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'auto_recharge' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger, notifyChannel: `${db.schema}_events` });
    catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    const balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    ledger = createLedgerService({ eventStore, catalog, balanceRegistry, logger });
    purchases = createPurchaseService({ catalog, balanceRegistry, ledger });
    recharges = createAutoRecharges({ pool: db.pool, balanceRegistry, purchases, ledger, eventStore });
  });

  afterAll(async () => {
    await eventStore?.close();
    await db?.drop();
  });

  /** A balance of a product of its own warning below 20, selling `tiny` (5 credits) and `refill` (100). */
  async function openBalance(starting: string, lowBalanceThreshold: string | null = '20') {
    const product: CreditProduct = {
      id: `product-${randomUUID()}`,
      name: 'Render credits',
      description: '',
      consumption: [],
      lowBalanceThreshold: lowBalanceThreshold === null ? null : parseCredits(lowBalanceThreshold),
      bundles: [
        { id: 'tiny', credits: parseCredits('5'), price: { amount: '1', currency: 'EUR' }, purchaseOption: true },
        { id: 'refill', credits: parseCredits('100'), price: { amount: '9.90', currency: 'EUR' }, purchaseOption: true },
      ],
    };
    await catalog.createProduct(product);
    const opened = await ledger.openBalance({ customerId: `customer-${randomUUID()}`, productId: product.id, startingBalance: parseCredits(starting) });
    return { product, balanceId: opened.balance.balanceId };
  }

  const balanceOf = async (balanceId: string) => formatCredits((await ledger.getBalance(balanceId)).balance.balance);
  const deduct = (balanceId: string, credits: string) => ledger.deduct(balanceId, { credits: parseCredits(credits), reason: null });
  const rechargesOf = async (balanceId: string) =>
    (await ledger.readLedger(balanceId, { limit: 500 })).items.filter(({ event }) => event.type === 'CreditToppedUp' && event.reason === AUTO_RECHARGE_REASON);

  /** The processor, run until `work` is done and it has handled everything stored by then. */
  async function withProcessor(work: () => Promise<void>): Promise<void> {
    const processor = createAutoRechargeProcessor({ eventStore, pool: db.pool, recharges, purchases, ledger, logger, metrics, lease: { standbyPollMs: 100 } });
    await processor.start();
    try {
      await work();
      const head = await eventStore.headPosition();
      await waitFor(() => processor.checkpoint() >= head, { description: `the auto-recharge processor at position ${head}`, timeoutMs: 60_000 });
    } finally {
      await processor.stop();
    }
  }

  it('buys the bundle for each warning after it was set, and not for one whose balance was topped up first', async () => {
    const { balanceId } = await openBalance('50');
    const before = await outcomes();
    await deduct(balanceId, '40'); // 10: a warning before the setting, never acted on
    await ledger.topUp(balanceId, { credits: parseCredits('15'), reason: null }); // 25: back above
    const set = await recharges.set(balanceId, { bundleId: 'refill', quantity: 1 }, { keyId: 'abc123abc123', keyName: 'ops' });
    expect(set).toMatchObject({ balanceId, bundleId: 'refill', quantity: 1, updatedBy: { keyId: 'abc123abc123', keyName: 'ops' } });
    expect(set.sincePosition).toBe(await eventStore.headPosition());

    await withProcessor(async () => {
      await deduct(balanceId, '10'); // 15: warned, bought
      await waitFor(async () => (await balanceOf(balanceId)) === '115', { description: 'the first auto-recharge', timeoutMs: 60_000 });
      await deduct(balanceId, '100'); // 15 again: warned again, bought again
      await waitFor(async () => (await rechargesOf(balanceId)).length === 2, { description: 'the second auto-recharge', timeoutMs: 60_000 });
    });
    expect(await balanceOf(balanceId)).toBe('115');
    // Warned while the processor was away, and topped up by hand before it came back: nothing bought.
    await deduct(balanceId, '100'); // 15
    await ledger.topUp(balanceId, { credits: parseCredits('50'), reason: null }); // 65
    await withProcessor(async () => {});
    expect(await balanceOf(balanceId)).toBe('65');
    const bought = await rechargesOf(balanceId);
    expect(bought).toHaveLength(2);
    const counted = await outcomes();
    expect([(counted.bought ?? 0) - (before.bought ?? 0), (counted.not_needed ?? 0) - (before.not_needed ?? 0)]).toEqual([2, 1]);
    // The setting says when it last bought: the second purchase's time.
    const latest = bought.reduce((newest, entry) => (entry.revision > newest.revision ? entry : newest));
    expect((await recharges.get(balanceId)).lastRechargedAt).toEqual(latest.recordedAt);
    for (const { event } of bought) {
      expect(event).toMatchObject({
        type: 'CreditToppedUp',
        source: 'purchase',
        credits: parseCredits('100'),
        purchase: { bundleId: 'refill', quantity: 1, unitPrice: '9.90', totalPrice: '9.90', currency: 'EUR' },
      });
    }
  });

  it('buys once per warning, however often the warning is handled', async () => {
    const { balanceId } = await openBalance('30');
    await recharges.set(balanceId, { bundleId: 'tiny', quantity: 1 });
    await withProcessor(async () => {
      await deduct(balanceId, '20'); // 10: warned; +5 leaves it below the limit, so no warning more
      await waitFor(async () => (await balanceOf(balanceId)) === '15', { description: 'the auto-recharge', timeoutMs: 60_000 });
    });
    // As after a crash before the checkpoint was saved: everything handed over again.
    await db.pool.query('UPDATE subscription_checkpoints SET position = 0 WHERE name = $1', [AUTO_RECHARGE_PROCESSOR]);
    await withProcessor(async () => {});
    expect(await rechargesOf(balanceId)).toHaveLength(1);
    expect(await balanceOf(balanceId)).toBe('15');
  });

  it('buys at most its monthly limit for the warnings of a month, each counted once, and never refuses what it bought', async () => {
    const { balanceId } = await openBalance('30');
    const before = await outcomes();
    expect((await recharges.set(balanceId, { bundleId: 'refill', quantity: 1, monthlyLimit: 2 })).monthlyLimit).toBe(2);
    await withProcessor(async () => {
      await deduct(balanceId, '20'); // 10: warned, bought: 110
      await waitFor(async () => (await balanceOf(balanceId)) === '110', { description: 'the first auto-recharge', timeoutMs: 60_000 });
      await deduct(balanceId, '100'); // 10: warned, bought: 110
      await waitFor(async () => (await rechargesOf(balanceId)).length === 2, { description: 'the second auto-recharge', timeoutMs: 60_000 });
      await deduct(balanceId, '100'); // 10: warned, past the limit
    });
    expect(await balanceOf(balanceId)).toBe('10');
    const limited = await recharges.get(balanceId);
    expect(limited).toMatchObject({ monthlyLimit: 2, rechargesThisMonth: 2, lastRefusal: { reason: expect.stringMatching(/^the monthly limit is reached: 2 auto-recharges for the warnings of \d{4}-\d{2}$/) } });
    const after = await outcomes();
    expect([(after.bought ?? 0) - (before.bought ?? 0), (after.limited ?? 0) - (before.limited ?? 0)]).toEqual([2, 1]);

    // Handled again, with a purchase of a later warning already counted (a deposed lease holder's,
    // say): the two bought are found stored and counted once each, not refused; the third stays left.
    const [{ warning_month: month }] = (await db.pool.query<{ warning_month: string }>("SELECT warning_month::text FROM auto_recharge_purchases WHERE balance_id = $1 LIMIT 1", [balanceId])).rows as [{ warning_month: string }];
    await db.pool.query('INSERT INTO auto_recharge_purchases (warning_event_id, balance_id, warning_month, bought_at) VALUES ($1, $2, $3::date, now())', [randomUUID(), balanceId, month]);
    await db.pool.query('UPDATE subscription_checkpoints SET position = 0 WHERE name = $1', [AUTO_RECHARGE_PROCESSOR]);
    await withProcessor(async () => {});
    expect(await rechargesOf(balanceId)).toHaveLength(2);
    expect(await balanceOf(balanceId)).toBe('10');
    expect(await recharges.purchasesInMonth(balanceId, month, randomUUID())).toBe(3);
    expect((await outcomes()).limited! - (before.limited ?? 0)).toBe(2);

    // Turned off and on again, the month's purchases still count: the next warning is past the limit too.
    await recharges.remove(balanceId);
    await ledger.topUp(balanceId, { credits: parseCredits('100'), reason: null }); // 110
    expect((await recharges.set(balanceId, { bundleId: 'refill', quantity: 1, monthlyLimit: 3 })).rechargesThisMonth).toBe(3);
    await withProcessor(async () => {
      await deduct(balanceId, '100'); // 10: warned, past the limit of 3
    });
    expect(await rechargesOf(balanceId)).toHaveLength(2);
    // No limit: it buys again.
    expect((await recharges.set(balanceId, { bundleId: 'refill', quantity: 1 })).monthlyLimit).toBeNull();
    await withProcessor(async () => {
      await ledger.topUp(balanceId, { credits: parseCredits('20'), reason: null }); // 30
      await deduct(balanceId, '20'); // 10: warned, bought
      await waitFor(async () => (await rechargesOf(balanceId)).length === 3, { description: 'a purchase without a limit', timeoutMs: 60_000 });
    });
  });

  it('buys for a warning stored before the setting was replaced and not yet handled, with the new setting', async () => {
    const { balanceId } = await openBalance('50');
    await recharges.set(balanceId, { bundleId: 'refill', quantity: 1 });
    // The processor is behind (not running): the warning waits for it.
    await deduct(balanceId, '40'); // 10: warned
    const replaced = await recharges.set(balanceId, { bundleId: 'refill', quantity: 2 });
    await withProcessor(async () => {
      await deduct(balanceId, '30'); // -20: still below, no new warning (one is outstanding)
      await waitFor(async () => (await rechargesOf(balanceId)).length === 1, { description: 'the waiting warning bought for', timeoutMs: 60_000 });
    });
    expect(await balanceOf(balanceId)).toBe('180');
    expect((await recharges.get(balanceId)).sincePosition).toBe(replaced.sincePosition);
    // Turned off and on again: a new setting, from the head on, as the first one.
    await recharges.remove(balanceId);
    expect((await recharges.set(balanceId, { bundleId: 'refill', quantity: 1 })).sincePosition).toBe(await eventStore.headPosition());
  });

  it('says a new setting made below the warning limit waits for the next warning, and buys nothing for the one before it', async () => {
    const { balanceId } = await openBalance('50');
    await deduct(balanceId, '40'); // 10: warned before there was a setting
    const set = await recharges.set(balanceId, { bundleId: 'refill', quantity: 1 });
    // The GET answers it from the API's balance read (autoRechargeRoutes.int.spec.ts pins it).
    expect(set.belowWarningLimit).toBe(true);
    await withProcessor(async () => {
      await deduct(balanceId, '5'); // 5: still below, no new warning
    });
    expect(await rechargesOf(balanceId)).toEqual([]);
    // Back at the limit, then below it again: that warning buys.
    await ledger.topUp(balanceId, { credits: parseCredits('15'), reason: null }); // 20
    await withProcessor(async () => {
      await deduct(balanceId, '1'); // 19: warned
      await waitFor(async () => (await rechargesOf(balanceId)).length === 1, { description: 'the next warning bought for', timeoutMs: 60_000 });
    });
    expect(await balanceOf(balanceId)).toBe('119');
  });

  /**
   * Settings whose event store head and balance reads run `hooks` as they return, and whose
   * transaction runs `whileLocked` once it holds the settings lock, as another writer would act
   * between set's steps.
   */
  function hookedRecharges(hooks: { afterBalanceRead?: () => Promise<void>; afterHeadRead?: () => Promise<void>; whileLocked?: () => Promise<void> }): AutoRecharges {
    const balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    const once = (hook: (() => Promise<void>) | undefined) => {
      let pending = hook;
      return async () => {
        const run = pending;
        pending = undefined;
        await run?.();
      };
    };
    const afterBalanceRead = once(hooks.afterBalanceRead);
    const afterHeadRead = once(hooks.afterHeadRead);
    const whileLocked = once(hooks.whileLocked);
    // The pool as set uses it, its clients' queries followed by the hook once one took the lock.
    const pool = new Proxy(db.pool, {
      get(target, property) {
        if (property !== 'connect') return Reflect.get(target, property, target) as unknown;
        return async () => {
          const client = await target.connect();
          return new Proxy(client, {
            get(clientTarget, clientProperty) {
              if (clientProperty !== 'query') return Reflect.get(clientTarget, clientProperty, clientTarget) as unknown;
              return async (...args: Parameters<typeof client.query>) => {
                const result = await (clientTarget.query as (...a: unknown[]) => Promise<unknown>)(...args);
                if (typeof args[0] === 'string' && args[0].includes('pg_advisory_xact_lock_shared')) await whileLocked();
                return result;
              };
            },
          });
        };
      },
    });
    return createAutoRecharges({
      pool,
      balanceRegistry,
      purchases,
      ledger: { getBalance: async (...args) => { const read = await ledger.getBalance(...args); await afterBalanceRead(); return read; } },
      eventStore: { headPosition: async () => { const head = await eventStore.headPosition(); await afterHeadRead(); return head; } },
    });
  }

  it('says the balance is below its limit for a warning stored between the balance read and the head read', async () => {
    const { balanceId } = await openBalance('30');
    let warnedAt = -1n;
    const hooked = hookedRecharges({
      afterBalanceRead: async () => {
        const deducted = await deduct(balanceId, '20'); // 10: warned
        warnedAt = deducted.events.find(({ event }) => event.type === 'LowBalanceWarned')!.position;
      },
    });
    const set = await hooked.set(balanceId, { bundleId: 'refill', quantity: 1 });
    await withProcessor(async () => {});
    // Every warning is acted on, or before `since` and then belowWarningLimit says so.
    expect(warnedAt).toBeGreaterThan(0n);
    expect(warnedAt <= set.sincePosition).toBe(true);
    expect(await rechargesOf(balanceId)).toEqual([]);
    expect(set.belowWarningLimit).toBe(true);
  });

  it('answers the setting it stored even when the load budget runs out after the balance was loaded', async () => {
    const { balanceId } = await openBalance('30');
    const budget = new AbortController();
    // The budget used up once the balance is loaded and before the setting is stored.
    const hooked = hookedRecharges({ afterHeadRead: async () => budget.abort(new Error('the load budget is used up')) });
    const set = await hooked.set(balanceId, { bundleId: 'refill', quantity: 1 }, undefined, { signal: budget.signal });
    expect(set).toMatchObject({ balanceId, bundleId: 'refill', belowWarningLimit: false });
    expect(await recharges.get(balanceId)).toMatchObject({ bundleId: 'refill', sincePosition: set.sincePosition });
  });

  it('says the balance is below its limit for a warning stored while an older load of the balance is still running', async () => {
    const { balanceId } = await openBalance('30');
    // A ledger whose reads of the balance's stream, once `held`, read and then wait for `release`:
    // another request's load that read the tail before the warning, still running after the commit.
    let held = false;
    let entered!: () => void;
    const enteredHold = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const gated = new Proxy(eventStore, {
      get(target, property) {
        const value = Reflect.get(target, property, target) as unknown;
        if (property !== 'readStream') return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        return async (...args: Parameters<EventStore['readStream']>) => {
          const page = await target.readStream(...args);
          if (held) {
            entered();
            await released;
          }
          return page;
        };
      },
    });
    const balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    const gatedLedger = createLedgerService({ eventStore: gated, catalog, balanceRegistry, logger });
    let reads = 0;
    let other: Promise<unknown> | undefined;
    let warnedAt = -1n;
    const racing = createAutoRecharges({
      pool: db.pool,
      balanceRegistry,
      purchases,
      eventStore,
      ledger: {
        getBalance: async (...args) => {
          reads += 1;
          if (reads > 1) {
            // The read after the commit starts (and joins whatever load runs) synchronously; then the older load ends.
            const read = gatedLedger.getBalance(...args);
            release();
            return read;
          }
          const first = await gatedLedger.getBalance(...args);
          held = true;
          other = gatedLedger.getBalance(balanceId); // another request's load: it reads the tail, then is held
          await enteredHold;
          const deducted = await deduct(balanceId, '20'); // 10: warned, before the head read
          warnedAt = deducted.events.find(({ event }) => event.type === 'LowBalanceWarned')!.position;
          return first;
        },
      },
    });
    try {
      const set = await racing.set(balanceId, { bundleId: 'refill', quantity: 1 });
      await other;
      expect(warnedAt).toBeGreaterThan(0n);
      expect(warnedAt <= set.sincePosition).toBe(true);
      expect(set.belowWarningLimit).toBe(true);
    } finally {
      release();
      await gatedLedger.close();
    }
  });

  /** The processor, started and at the head, for `work`; then run until it has handled everything stored by then. */
  async function withProcessorAtHead(work: (processor: ReturnType<typeof createAutoRechargeProcessor>) => Promise<void>): Promise<void> {
    const processor = createAutoRechargeProcessor({ eventStore, pool: db.pool, recharges, purchases, ledger, logger, metrics, lease: { standbyPollMs: 100 } });
    await processor.start();
    try {
      await waitFor(async () => processor.checkpoint() >= (await eventStore.headPosition()), { description: 'the processor at the head', timeoutMs: 60_000 });
      await work(processor);
      await waitFor(async () => processor.checkpoint() >= (await eventStore.headPosition()), { description: 'the processor at the head', timeoutMs: 60_000 });
    } finally {
      await processor.stop();
    }
  }

  it('says the balance is below its limit for a warning stored after the head read that the processor passes before the setting is stored', async () => {
    const { balanceId } = await openBalance('30');
    let warnedAt = -1n;
    let set: AutoRechargeStatus | undefined;
    await withProcessorAtHead(async (processor) => {
      const hooked = hookedRecharges({
        afterHeadRead: async () => {
          const deducted = await deduct(balanceId, '20'); // 10: warned, after the head read
          warnedAt = deducted.events.find(({ event }) => event.type === 'LowBalanceWarned')!.position;
          // Nothing is locked yet: the processor reads its batch's settings (none) and passes it.
          await waitFor(() => processor.checkpoint() >= warnedAt, { description: 'the processor past the warning', timeoutMs: 60_000 });
        },
      });
      set = await hooked.set(balanceId, { bundleId: 'refill', quantity: 1 });
    });
    // The processor's settings read moved `since` past the warning: not bought, and said so.
    expect(warnedAt).toBeGreaterThan(0n);
    expect(warnedAt <= set!.sincePosition).toBe(true);
    expect(await rechargesOf(balanceId)).toEqual([]);
    expect(set!.belowWarningLimit).toBe(true);
  });

  it('buys for a warning the processor reaches while the setting is being stored: its settings read waits for it', async () => {
    const { balanceId } = await openBalance('30');
    let set: AutoRechargeStatus | undefined;
    await withProcessorAtHead(async () => {
      const hooked = hookedRecharges({
        whileLocked: async () => {
          await deduct(balanceId, '20'); // 10: warned, after the head read
          const waiting = async () =>
            (await db.pool.query("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = $1 AND objid = 'auto_recharges'::regclass::oid", [SETTINGS_LOCK_CLASS])).rowCount! > 0;
          await waitFor(waiting, { description: "the processor's settings read waiting for the setting", timeoutMs: 60_000 });
        },
      });
      set = await hooked.set(balanceId, { bundleId: 'refill', quantity: 1 });
    });
    expect(await rechargesOf(balanceId)).toHaveLength(1);
    expect(await balanceOf(balanceId)).toBe('110');
    expect(set?.belowWarningLimit).toBe(true);
  });

  it('sets with a pool of one connection, as TALLY_DATABASE_POOL_SIZE=1 wires it: nothing holds a connection while it needs another', async () => {
    const { balanceId } = await openBalance('30');
    // main.ts's wiring: one pool under the event store, the ledger and the settings. A short
    // connect timeout, so a call waiting for a second connection fails fast rather than the test.
    const one = createPool({ connectionString: db.connectionString, schema: db.schema, max: 1, connectionTimeoutMillis: 1_000, applicationName: 'test-auto-recharge-one', logger });
    const store = createPostgresEventStore({ pool: one, logger, notifyChannel: `${db.schema}_events` });
    const oneCatalog = createPostgresCatalogStore({ pool: one, logger });
    const oneRegistry = createPostgresBalanceRegistry({ pool: one });
    const oneLedger = createLedgerService({ eventStore: store, catalog: oneCatalog, balanceRegistry: oneRegistry, logger });
    const onePurchases = createPurchaseService({ catalog: oneCatalog, balanceRegistry: oneRegistry, ledger: oneLedger });
    const oneRecharges = createAutoRecharges({ pool: one, balanceRegistry: oneRegistry, purchases: onePurchases, ledger: oneLedger, eventStore: store });
    try {
      const set = await oneRecharges.set(balanceId, { bundleId: 'refill', quantity: 1 });
      expect(set).toMatchObject({ balanceId, bundleId: 'refill', quantity: 1, belowWarningLimit: false });
      expect(set.sincePosition).toBe(await eventStore.headPosition());
      expect([...(await oneRecharges.ofBalances([balanceId], set.sincePosition)).keys()]).toEqual([balanceId]);
    } finally {
      await oneLedger.close();
      await store.close();
      await one.end();
    }
  });

  it('buys only a purchase option for a setting made on the portal, refusing a bundle taken off them since as the portal would', async () => {
    const portal = await openBalance('50');
    const key = await openBalance('50');
    await recharges.set(portal.balanceId, { bundleId: 'refill', quantity: 1, purchaseOptionsOnly: true });
    await recharges.set(key.balanceId, { bundleId: 'refill', quantity: 1 }, { keyId: 'abc123abc123', keyName: 'ops' });
    // The operator keeps `refill` off the portal's purchase options (still sold to keys).
    for (const { product } of [portal, key]) {
      await catalog.updateProduct({ ...product, bundles: product.bundles.map((bundle) => (bundle.id === 'refill' ? { ...bundle, purchaseOption: false } : bundle)) });
    }
    await withProcessor(async () => {
      await deduct(portal.balanceId, '40');
      await deduct(key.balanceId, '40');
      await waitFor(async () => (await rechargesOf(key.balanceId)).length === 1, { description: 'the setting made with a key bought', timeoutMs: 60_000 });
    });
    expect(await rechargesOf(portal.balanceId)).toEqual([]);
    expect(await balanceOf(portal.balanceId)).toBe('10');
    expect((await recharges.get(portal.balanceId)).lastRefusal).toMatchObject({ reason: expect.stringMatching(/offers no bundle "refill" as a purchase option/) });
    expect(await balanceOf(key.balanceId)).toBe('110');
  });

  it('buys at the terms shown when it was set, refusing a bundle whose credits or price changed since until it is set again', async () => {
    const { product, balanceId } = await openBalance('50');
    const set = await recharges.set(balanceId, { bundleId: 'refill', quantity: 2, purchaseOptionsOnly: true });
    expect(set.terms).toEqual({ credits: parseCredits('100'), price: { amount: '9.90', currency: 'EUR' } });
    expect((await recharges.get(balanceId)).terms).toEqual(set.terms);
    const repriced = { ...product, bundles: product.bundles.map((bundle) => (bundle.id === 'refill' ? { ...bundle, credits: parseCredits('1'), price: { amount: '990.00', currency: 'USD' } } : bundle)) };
    await catalog.updateProduct(repriced);
    await withProcessor(async () => {
      await deduct(balanceId, '40'); // 10: warned, the terms changed: refused
    });
    expect(await rechargesOf(balanceId)).toEqual([]);
    expect((await recharges.get(balanceId)).lastRefusal?.reason).toMatch(/bundle "refill" is now 1 credits for 990.00 USD, not 100 credits for 9.90 EUR.*setting the auto-recharge again accepts the new terms/);

    // Set again: the new terms are accepted, and the next warning buys at them.
    expect((await recharges.set(balanceId, { bundleId: 'refill', quantity: 2, purchaseOptionsOnly: true })).terms).toEqual({ credits: parseCredits('1'), price: { amount: '990.00', currency: 'USD' } });
    // The same terms spelled otherwise are the same terms.
    await catalog.updateProduct({ ...repriced, bundles: repriced.bundles.map((bundle) => (bundle.id === 'refill' ? { ...bundle, price: { amount: '990', currency: 'USD' } } : bundle)) });
    await ledger.topUp(balanceId, { credits: parseCredits('15'), reason: null }); // 25
    await withProcessor(async () => {
      await deduct(balanceId, '10'); // 15: warned, bought at the new terms
      await waitFor(async () => (await rechargesOf(balanceId)).length === 1, { description: 'the purchase at the accepted terms', timeoutMs: 60_000 });
    });
    expect(await balanceOf(balanceId)).toBe('17');

    // A setting stored before terms were kept (none) buys at the catalog's terms of the moment.
    await db.pool.query('UPDATE auto_recharges SET terms_credits = NULL, terms_price_amount = NULL, terms_currency = NULL WHERE balance_id = $1', [balanceId]);
    await catalog.updateProduct(product);
    expect((await recharges.get(balanceId)).terms).toBeNull();
    await withProcessor(async () => {
      await deduct(balanceId, '10'); // 7: still below, no warning; top up and cross again
      await ledger.topUp(balanceId, { credits: parseCredits('20'), reason: null }); // 27
      await deduct(balanceId, '10'); // 17: warned, bought at the catalog's terms
      await waitFor(async () => (await rechargesOf(balanceId)).length === 2, { description: 'the purchase of a setting without terms', timeoutMs: 60_000 });
    });
    expect(await balanceOf(balanceId)).toBe('217');
  });

  it('buys at the catalog\'s terms for a setting replaced by an API of the release before terms (migration 039), and keeps a setting\'s terms through its outcomes', async () => {
    const { balanceId } = await openBalance('50');
    expect((await recharges.set(balanceId, { bundleId: 'tiny', quantity: 1 })).terms).toEqual({ credits: parseCredits('5'), price: { amount: '1', currency: 'EUR' } });
    // The previous release's replacement, as it runs: it knows no terms, so it never touches them.
    await db.pool.query(
      `INSERT INTO auto_recharges (balance_id, bundle_id, quantity, since_position, updated_by_key_id, updated_by_key_name, monthly_limit, purchase_options_only)
       VALUES ($1, 'refill', 1, 0, NULL, NULL, NULL, false)
       ON CONFLICT (balance_id) DO UPDATE SET bundle_id = excluded.bundle_id, quantity = excluded.quantity, since_position = auto_recharges.since_position,
         monthly_limit = excluded.monthly_limit, purchase_options_only = excluded.purchase_options_only,
         updated_at = now(), updated_by_key_id = excluded.updated_by_key_id, updated_by_key_name = excluded.updated_by_key_name,
         last_refused_at = NULL, last_refusal = NULL`,
      [balanceId],
    );
    // Not tiny's terms for refill (refused at every warning): none, as a setting made before terms.
    expect(await recharges.get(balanceId)).toMatchObject({ bundleId: 'refill', terms: null });
    await withProcessor(async () => {
      await deduct(balanceId, '40'); // 10: warned, bought at the catalog's terms
      await waitFor(async () => (await rechargesOf(balanceId)).length === 1, { description: 'the purchase of the replaced setting', timeoutMs: 60_000 });
    });
    expect(await balanceOf(balanceId)).toBe('110');
    // This release's setting keeps its terms, and its outcomes (bought, refused) leave them.
    const set = await recharges.set(balanceId, { bundleId: 'tiny', quantity: 1 });
    await recharges.recordOutcome(balanceId, { kind: 'refused', at: new Date(), reason: 'a test' });
    expect((await recharges.get(balanceId)).terms).toEqual(set.terms);
    expect(set.terms).not.toBeNull();
  });

  it('leaves a warning whose purchase is refused for good, and goes on to the next', async () => {
    const gone = await openBalance('30');
    const next = await openBalance('30');
    await recharges.set(gone.balanceId, { bundleId: 'refill', quantity: 1 });
    await recharges.set(next.balanceId, { bundleId: 'refill', quantity: 2 });
    // The bundle taken off the product after the setting was made.
    await catalog.updateProduct({ ...gone.product, bundles: gone.product.bundles.filter((bundle) => bundle.id !== 'refill') });
    await withProcessor(async () => {
      await deduct(gone.balanceId, '20');
      await deduct(next.balanceId, '20');
      await waitFor(async () => (await balanceOf(next.balanceId)) === '210', { description: 'the next balance recharged', timeoutMs: 60_000 });
    });
    expect(await balanceOf(gone.balanceId)).toBe('10');
    expect(await rechargesOf(gone.balanceId)).toEqual([]);
    // The setting says why, until it is set anew (a bundle that is sold).
    const refused = await recharges.get(gone.balanceId);
    expect(refused).toMatchObject({ lastRechargedAt: null, lastRefusal: { reason: expect.stringMatching(/has no bundle with id "refill"/) } });
    expect((await recharges.get(next.balanceId)).lastRefusal).toBeNull();
    expect((await recharges.set(gone.balanceId, { bundleId: 'tiny', quantity: 1 })).lastRefusal).toBeNull();
  });

  it('refuses for good while its product is stored invalid, saying what to do once it is repaired', async () => {
    const { product, balanceId } = await openBalance('30');
    await recharges.set(balanceId, { bundleId: 'refill', quantity: 1 });
    // A hand edit the catalog's validation refuses: the purchase cannot be priced.
    await db.pool.query(`UPDATE credit_products SET consumption = '[null]' WHERE id = $1`, [product.id]);
    await withProcessor(async () => {
      await deduct(balanceId, '20'); // 10: warned, refused
    });
    expect(await rechargesOf(balanceId)).toEqual([]);
    expect((await recharges.get(balanceId)).lastRefusal?.reason).toMatch(
      /as stored fails validation.*once the product is repaired, set the auto-recharge again; if it answers belowWarningLimit true, top the balance up by hand/,
    );
    // Repaired: the refused warning is not handled again; setting it again says the balance is still below.
    await db.pool.query(`UPDATE credit_products SET consumption = '[]' WHERE id = $1`, [product.id]);
    await withProcessor(async () => {});
    expect(await rechargesOf(balanceId)).toEqual([]);
    expect(await recharges.set(balanceId, { bundleId: 'refill', quantity: 1 })).toMatchObject({ belowWarningLimit: true, lastRefusal: null });
  });

  it('counts a purchase found stored when its warning is handled again, even with its bundle gone or the balance back above its limit', async () => {
    // Each warning's first run bought and died before keeping the outcome (a crash, a lease taken
    // over): the purchase is stored, the setting knows nothing of it.
    const warnedAndBought = async (bundleId: string, starting: string) => {
      const opened = await openBalance(starting);
      await recharges.set(opened.balanceId, { bundleId, quantity: 1, monthlyLimit: 5 });
      const deducted = await deduct(opened.balanceId, '20');
      const warning = deducted.events.find(({ event }) => event.type === 'LowBalanceWarned')!;
      const bought = await purchases.autoRecharge(opened.balanceId, { bundleId, quantity: 1 }, warning.eventId);
      return { ...opened, bought };
    };
    // 30 - 20 + 5: still below the limit when handled again, and its bundle taken off the product since.
    const gone = await warnedAndBought('tiny', '30');
    await catalog.updateProduct({ ...gone.product, bundles: gone.product.bundles.filter((bundle) => bundle.id !== 'tiny') });
    // 30 - 20 + 100: back above the limit, by the purchase itself.
    const above = await warnedAndBought('refill', '30');
    const before = await outcomes();

    await withProcessor(async () => {});

    for (const { balanceId, bought } of [gone, above]) {
      expect(await rechargesOf(balanceId)).toHaveLength(1);
      expect(await recharges.get(balanceId)).toMatchObject({ lastRefusal: null, lastRechargedAt: bought.events[0]!.recordedAt, rechargesThisMonth: 1 });
    }
    expect([await balanceOf(gone.balanceId), await balanceOf(above.balanceId)]).toEqual(['15', '110']);
    // Found again, not bought, refused or found unneeded: nothing counted.
    const after = await outcomes();
    expect(['bought', 'refused', 'not_needed', 'limited'].map((outcome) => (after[outcome] ?? 0) - (before[outcome] ?? 0))).toEqual([0, 0, 0, 0]);
  });

  it('counts each outcome once when its batch is handled again after a transient failure on a later warning', async () => {
    const above = await openBalance('30');
    const gone = await openBalance('30');
    const flaky = await openBalance('30');
    for (const { balanceId } of [above, gone, flaky]) await recharges.set(balanceId, { bundleId: 'refill', quantity: 1 });
    await catalog.updateProduct({ ...gone.product, bundles: gone.product.bundles.filter((bundle) => bundle.id !== 'refill') });
    // One batch, in this order: back above its limit (not needed), refused, then bought on the second try.
    await deduct(above.balanceId, '20');
    await ledger.topUp(above.balanceId, { credits: parseCredits('50'), reason: null });
    await deduct(gone.balanceId, '20');
    await deduct(flaky.balanceId, '20');
    let failures = 0;
    const failingOnce: Pick<PurchaseService, 'autoRecharge'> = {
      autoRecharge: async (balanceId, request, warningEventId) => {
        if (balanceId === flaky.balanceId && failures++ === 0) throw Object.assign(new Error('connection reset'), { retriable: true });
        return purchases.autoRecharge(balanceId, request, warningEventId);
      },
    };
    const before = await outcomes();
    const processor = createAutoRechargeProcessor({ eventStore, pool: db.pool, recharges, purchases: failingOnce, ledger, logger, metrics, lease: { standbyPollMs: 100 } });
    await processor.start();
    try {
      const head = await eventStore.headPosition();
      await waitFor(() => processor.checkpoint() >= head, { description: 'the batch handled', timeoutMs: 60_000 });
    } finally {
      await processor.stop();
    }
    expect(failures).toBe(2);
    expect(await rechargesOf(flaky.balanceId)).toHaveLength(1);
    const after = await outcomes();
    const counted = Object.fromEntries(['bought', 'refused', 'not_needed', 'limited'].map((outcome) => [outcome, (after[outcome] ?? 0) - (before[outcome] ?? 0)]));
    expect(counted).toEqual({ bought: 1, refused: 1, not_needed: 1, limited: 0 });
  });

  it('counts a purchase once when it was made before a later warning of its batch failed transiently, and the retry finds it stored', async () => {
    const first = await openBalance('30');
    const flaky = await openBalance('30');
    for (const { balanceId } of [first, flaky]) await recharges.set(balanceId, { bundleId: 'refill', quantity: 1 });
    // One batch: the first warning buys, the second fails once; the retry replays the first purchase.
    await deduct(first.balanceId, '20');
    await deduct(flaky.balanceId, '20');
    let failures = 0;
    const failingOnce: Pick<PurchaseService, 'autoRecharge'> = {
      autoRecharge: async (balanceId, request, warningEventId) => {
        if (balanceId === flaky.balanceId && failures++ === 0) throw Object.assign(new Error('connection reset'), { retriable: true });
        return purchases.autoRecharge(balanceId, request, warningEventId);
      },
    };
    const before = await outcomes();
    const processor = createAutoRechargeProcessor({ eventStore, pool: db.pool, recharges, purchases: failingOnce, ledger, logger, metrics, lease: { standbyPollMs: 100 } });
    await processor.start();
    try {
      const head = await eventStore.headPosition();
      await waitFor(() => processor.checkpoint() >= head, { description: 'the batch handled', timeoutMs: 60_000 });
    } finally {
      await processor.stop();
    }
    expect(failures).toBe(2);
    expect([(await rechargesOf(first.balanceId)).length, (await rechargesOf(flaky.balanceId)).length]).toEqual([1, 1]);
    const after = await outcomes();
    expect((after.bought ?? 0) - (before.bought ?? 0)).toBe(2);
  });

  it('checks a setting as the purchase it makes, replaces it, and turns it off', async () => {
    const { balanceId } = await openBalance('30');
    await expect(recharges.get(balanceId)).rejects.toBeInstanceOf(AutoRechargeNotSetError);
    await expect(recharges.get(`nobody-${randomUUID()}`)).rejects.toBeInstanceOf(BalanceNotFoundError);
    await expect(recharges.set(balanceId, { bundleId: 'huge', quantity: 1 })).rejects.toBeInstanceOf(BundleNotFoundError);
    await expect(recharges.set(`nobody-${randomUUID()}`, { bundleId: 'tiny', quantity: 1 })).rejects.toBeInstanceOf(BalanceNotFoundError);
    for (const monthlyLimit of [0, 1001, 1.5]) {
      await expect(recharges.set(balanceId, { bundleId: 'tiny', quantity: 1, monthlyLimit })).rejects.toThrow(/monthlyLimit must be an integer from 1 to 1000/);
    }
    const silent = await openBalance('30', null);
    await expect(recharges.set(silent.balanceId, { bundleId: 'tiny', quantity: 1 })).rejects.toBeInstanceOf(WarningLimitNotSetError);

    const first = await recharges.set(balanceId, { bundleId: 'tiny', quantity: 1 });
    await deduct(balanceId, '1');
    const replaced = await recharges.set(balanceId, { bundleId: 'refill', quantity: 3 });
    expect(replaced).toMatchObject({ bundleId: 'refill', quantity: 3, updatedBy: null });
    // A replacement keeps acting on the warnings stored since the first setting.
    expect(replaced.sincePosition).toBe(first.sincePosition);
    // get is the setting alone: whether the balance is below its limit is the API's balance read's to say.
    const { belowWarningLimit: _below, ...setting } = replaced;
    expect(await recharges.get(balanceId)).toEqual(setting);
    expect([...(await recharges.ofBalances([balanceId, silent.balanceId], 0n)).keys()]).toEqual([balanceId]);
    await recharges.remove(balanceId);
    await expect(recharges.get(balanceId)).rejects.toBeInstanceOf(AutoRechargeNotSetError);
    await expect(recharges.remove(balanceId)).rejects.toBeInstanceOf(AutoRechargeNotSetError);
  });
});
