import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { createPostgresCatalogStore } from '@tally/catalog';
import { BalanceNotOpenError, formatCredits, parseCredits, ValidationError, type CreditProduct } from '@tally/domain';
import { createPostgresEventStore, type AppendRequest, type EventStore } from '@tally/event-store';
import { createTestSchema, waitFor, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { BalanceNotFoundError, BundleNotFoundError, IdempotencyKeyReusedError, PurchaseKeyRefusedError, PurchaseTermsChangedError } from './ledgerErrors';
import type { RecordedBalanceEvent } from './ledgerEvents';
import { createLedgerService, type LedgerService } from './ledgerService';
import { createPostgresBalanceRegistry } from './postgresBalanceRegistry';
import { createPurchaseService, type PurchaseService } from './purchaseService';

jest.setTimeout(120_000);

describe('bundle purchases on PostgreSQL and the event store', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let logger: pino.Logger;
  let h: {
    ledger: LedgerService;
    purchases: PurchaseService;
    catalog: ReturnType<typeof createPostgresCatalogStore>;
    createProduct(fields?: Partial<CreditProduct>): Promise<CreditProduct>;
    ledgerOf(balanceId: string): Promise<readonly RecordedBalanceEvent[]>;
  };

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'purchases' });
    logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger, notifyChannel: `${db.schema}_events` });
    const catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    const balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    const ledger = createLedgerService({ eventStore, catalog, balanceRegistry, logger });
    h = {
      ledger,
      catalog,
      purchases: createPurchaseService({ catalog, balanceRegistry, ledger }),
      async createProduct(fields = {}) {
        const product = { id: `product-${randomUUID()}`, name: 'API credits', description: '', consumption: [], lowBalanceThreshold: null, bundles: [], ...fields };
        await catalog.createProduct(product);
        return product;
      },
      // Oldest first; these balances have a handful of events, one page.
      ledgerOf: async (balanceId) => [...(await ledger.readLedger(balanceId, { limit: 500 })).items].reverse(),
    };
  });

  afterAll(async () => {
    await eventStore?.close();
    await db?.drop();
  });

  async function balanceWithBundles() {
    const product = await h.createProduct({
      bundles: [
        { id: 'small', credits: parseCredits('100'), price: { amount: '9.90', currency: 'EUR' }, purchaseOption: true },
        { id: 'large', credits: parseCredits('1000'), price: { amount: '79', currency: 'EUR' }, purchaseOption: true },
      ],
    });
    const customerId = `customer-${randomUUID()}`;
    const opened = await h.ledger.openBalance({ customerId, productId: product.id, startingBalance: 0n });
    return { product, customerId, balanceId: opened.balance.balanceId };
  }

  it('records the bundle, quantity, unit and exact total price, and adds the credits', async () => {
    const { balanceId } = await balanceWithBundles();

    const result = await h.purchases.purchase(balanceId, { bundleId: 'small', quantity: 3 });

    expect(result.events[0]?.event).toMatchObject({
      type: 'CreditToppedUp',
      source: 'purchase',
      credits: parseCredits('300'),
      purchase: { bundleId: 'small', quantity: 3, unitPrice: '9.90', totalPrice: '29.70', currency: 'EUR' },
    });
    expect(formatCredits(result.balance.balance)).toBe('300');
    const ledger = await h.ledgerOf(balanceId);
    expect(ledger.map(({ event }) => event.type)).toEqual(['CreditBalanceOpened', 'CreditToppedUp']);
  });

  it('is idempotent by Idempotency-Key: a retry returns the first purchase and adds nothing', async () => {
    const { balanceId } = await balanceWithBundles();
    const options = { idempotencyKey: `key-${randomUUID()}`, requestHash: 'large x2' };

    const first = await h.purchases.purchase(balanceId, { bundleId: 'large', quantity: 2 }, options);
    const retries = await Promise.all([1, 2, 3].map(() => h.purchases.purchase(balanceId, { bundleId: 'large', quantity: 2 }, options)));

    expect(first.replayed).toBe(false);
    expect(retries.every((retry) => retry.replayed && retry.events[0]?.eventId === first.events[0]?.eventId)).toBe(true);
    expect(formatCredits((await h.ledger.getBalance(balanceId)).balance.balance)).toBe('2000');
    const purchases = (await h.ledgerOf(balanceId)).filter(({ event }) => event.type === 'CreditToppedUp');
    expect(purchases).toHaveLength(1);
    await expect(
      h.purchases.purchase(balanceId, { bundleId: 'large', quantity: 1 }, { ...options, requestHash: 'large x1' }),
    ).rejects.toBeInstanceOf(IdempotencyKeyReusedError);
  });

  it('replays a purchase by its Idempotency-Key after its bundle is repriced or removed, and refuses another request with the key', async () => {
    const { product, balanceId } = await balanceWithBundles();
    const options = { idempotencyKey: `key-${randomUUID()}`, requestHash: 'small x1' };
    const first = await h.purchases.purchase(balanceId, { bundleId: 'small', quantity: 1 }, options);

    // The price changed, then the bundle was taken off the product: the purchase was made all the same.
    await h.catalog.updateProduct({ ...product, bundles: product.bundles.map((bundle) => ({ ...bundle, price: { amount: '19.90', currency: 'EUR' } })) });
    expect((await h.purchases.purchase(balanceId, { bundleId: 'small', quantity: 1 }, options)).replayed).toBe(true);
    await h.catalog.updateProduct({ ...product, bundles: [] });
    const retry = await h.purchases.purchase(balanceId, { bundleId: 'small', quantity: 1 }, options);

    expect(retry).toMatchObject({ replayed: true, revision: first.revision });
    expect(retry.events.map(({ eventId }) => eventId)).toEqual(first.events.map(({ eventId }) => eventId));
    expect(retry.events[0]?.event).toMatchObject({ purchase: { bundleId: 'small', unitPrice: '9.90', totalPrice: '9.90' } });
    expect(formatCredits((await h.ledger.getBalance(balanceId)).balance.balance)).toBe('100');
    // The same key with another request is still that, not a replay and not a missing bundle.
    await expect(h.purchases.purchase(balanceId, { bundleId: 'small', quantity: 2 }, { ...options, requestHash: 'small x2' })).rejects.toBeInstanceOf(IdempotencyKeyReusedError);
    // And a new key buys only what the product sells now.
    await expect(h.purchases.purchase(balanceId, { bundleId: 'small', quantity: 1 }, { idempotencyKey: `key-${randomUUID()}` })).rejects.toBeInstanceOf(BundleNotFoundError);
    expect(await h.ledgerOf(balanceId)).toHaveLength(2);
  });

  /**
   * Another API process (its own ledger service and caches) on the same store, whose next append
   * matching `holds` waits until released: a request held between its decision and its write.
   */
  function anotherProcess(holds: (requests: readonly AppendRequest[]) => boolean) {
    let gate: { reached: boolean; released: Promise<void> } | undefined;
    const store: EventStore = {
      ...eventStore,
      async appendMany(requests, appendOptions) {
        if (gate !== undefined && !gate.reached && holds(requests)) {
          gate.reached = true;
          await gate.released;
        }
        return eventStore.appendMany(requests, appendOptions);
      },
    };
    const catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    const balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    const ledger = createLedgerService({ eventStore: store, catalog, balanceRegistry, logger });
    return {
      purchases: createPurchaseService({ catalog, balanceRegistry, ledger }),
      /** Holds the next append matching `holds` until `release`; `reached` says one is held. */
      arm(): { release: () => void; reached: () => boolean } {
        let release!: () => void;
        const released = new Promise<void>((resolve) => (release = resolve));
        const armed = { reached: false, released };
        gate = armed;
        return { release, reached: () => armed.reached };
      },
    };
  }

  const writesPurchase = (requests: readonly AppendRequest[]) => requests.some((request) => request.events.some((event) => event.type === 'CreditToppedUp'));
  const settle = <T,>(promise: Promise<T>) => promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );

  describe('a same-key retry while the first request is priced but not yet written', () => {
    const expected = { credits: parseCredits('100'), price: { amount: '9.90', currency: 'EUR' } };
    const request = { bundleId: 'small', quantity: 1, expected };

    async function firstHeldAtItsWrite(balanceId: string, options: { idempotencyKey: string; requestHash: string }) {
      const a = anotherProcess(writesPurchase);
      const gate = a.arm();
      const first = settle(a.purchases.purchase(balanceId, request, options));
      let done = false;
      void first.then(() => (done = true));
      await waitFor(() => gate.reached() || done, { description: "request A's purchase append", intervalMs: 5 });
      expect(done).toBe(false);
      return { first, release: gate.release };
    }

    it('a retry refused for the new price says nothing was bought, and then nothing is: the first request does not land', async () => {
      const { product, balanceId } = await balanceWithBundles();
      const options = { idempotencyKey: `key-${randomUUID()}`, requestHash: 'small x1 at 9.90' };
      const { first, release } = await firstHeldAtItsWrite(balanceId, options);

      await h.catalog.updateProduct({ ...product, bundles: product.bundles.map((bundle) => (bundle.id === 'small' ? { ...bundle, price: { amount: '19.90', currency: 'EUR' } } : bundle)) });
      const retry = await settle(h.purchases.purchase(balanceId, request, options));
      release();
      const a = await first;

      // B told the customer nothing was bought: so nothing is, ever, under this key and body.
      expect(retry.ok ? retry.value : retry.error).toBeInstanceOf(PurchaseTermsChangedError);
      expect(String(retry.ok ? '' : retry.error)).toContain('nothing was bought');
      expect((await h.ledgerOf(balanceId)).filter(({ event }) => event.type === 'CreditToppedUp')).toEqual([]);
      expect(a.ok ? a.value : a.error).toBeInstanceOf(PurchaseTermsChangedError);
      expect(formatCredits((await h.ledger.getBalance(balanceId)).balance.balance)).toBe('0');
      // A client that keeps the key and asks again at the new terms (another body): bought, once.
      const accepted = { ...request, expected: { ...expected, price: { amount: '19.90', currency: 'EUR' } } };
      const bought = await h.purchases.purchase(balanceId, accepted, { ...options, requestHash: 'small x1 at 19.90' });
      expect(bought.replayed).toBe(false);
      expect(bought.events[0]?.event).toMatchObject({ purchase: { unitPrice: '19.90' } });
      expect(formatCredits((await h.ledger.getBalance(balanceId)).balance.balance)).toBe('100');
    });

    it('a retry refused for a removed bundle says so, and the first request does not land', async () => {
      const { product, balanceId } = await balanceWithBundles();
      const options = { idempotencyKey: `key-${randomUUID()}`, requestHash: 'small x1 at 9.90' };
      const { first, release } = await firstHeldAtItsWrite(balanceId, options);

      await h.catalog.updateProduct({ ...product, bundles: product.bundles.filter((bundle) => bundle.id !== 'small') });
      const retry = await settle(h.purchases.purchase(balanceId, request, options));
      release();
      const a = await first;

      expect(retry.ok ? retry.value : retry.error).toBeInstanceOf(BundleNotFoundError);
      expect((await h.ledgerOf(balanceId)).filter(({ event }) => event.type === 'CreditToppedUp')).toEqual([]);
      expect(a.ok ? a.value : a.error).toBeInstanceOf(BundleNotFoundError);
    });

    it('a request refused for its terms stays refused under its key and body when the terms come back; a new key buys', async () => {
      const { product, balanceId } = await balanceWithBundles();
      const options = { idempotencyKey: `key-${randomUUID()}`, requestHash: 'small x1 at 9.90' };
      const reprice = (amount: string) =>
        h.catalog.updateProduct({ ...product, bundles: product.bundles.map((bundle) => (bundle.id === 'small' ? { ...bundle, price: { amount, currency: 'EUR' } } : bundle)) });
      await reprice('19.90');
      await expect(h.purchases.purchase(balanceId, request, options)).rejects.toBeInstanceOf(PurchaseTermsChangedError);
      // Sent again while the terms are still changed: the catalog's refusal again, not the fence's.
      await expect(h.purchases.purchase(balanceId, request, options)).rejects.toBeInstanceOf(PurchaseTermsChangedError);
      await reprice('9.90');

      // Its answer was "nothing was bought", and a twin still in flight would be this very request:
      // the fence cannot tell a new click from it, so the key and body buy nothing any more.
      await expect(h.purchases.purchase(balanceId, request, options)).rejects.toBeInstanceOf(PurchaseKeyRefusedError);
      expect((await h.ledgerOf(balanceId)).filter(({ event }) => event.type === 'CreditToppedUp')).toEqual([]);
      expect((await h.purchases.purchase(balanceId, request, { ...options, idempotencyKey: `key-${randomUUID()}` })).replayed).toBe(false);
    });

    it('a retry refused for the new price while the first request lands first answers that purchase (replayed)', async () => {
      const { product, balanceId } = await balanceWithBundles();
      const options = { idempotencyKey: `key-${randomUUID()}`, requestHash: 'small x1 at 9.90' };
      const { first, release } = await firstHeldAtItsWrite(balanceId, options);
      await h.catalog.updateProduct({ ...product, bundles: product.bundles.map((bundle) => (bundle.id === 'small' ? { ...bundle, price: { amount: '19.90', currency: 'EUR' } } : bundle)) });

      // B is refused by the catalog, then held before whatever it writes to settle that refusal; A lands meanwhile.
      const b = anotherProcess((requests) => !writesPurchase(requests));
      const bGate = b.arm();
      const retry = settle(b.purchases.purchase(balanceId, request, options));
      let bDone = false;
      void retry.then(() => (bDone = true));
      await waitFor(() => bGate.reached() || bDone, { description: "request B's write after its refusal", intervalMs: 5 });
      release();
      const a = await first;
      bGate.release();
      const answer = await retry;

      expect(a.ok && a.value.replayed).toBe(false);
      const landed = a.ok ? a.value.events[0]?.eventId : undefined;
      expect(answer.ok ? { replayed: answer.value.replayed, eventId: answer.value.events[0]?.eventId } : answer.error).toEqual({ replayed: true, eventId: landed });
      expect(formatCredits((await h.ledger.getBalance(balanceId)).balance.balance)).toBe('100');
    });
  });

  it('credits once for 20 concurrent purchases with one Idempotency-Key on two processes', async () => {
    const { balanceId } = await balanceWithBundles();
    const other = anotherProcess(() => false);
    const options = { idempotencyKey: `key-${randomUUID()}`, requestHash: 'small x1' };

    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? h.purchases : other.purchases).purchase(balanceId, { bundleId: 'small', quantity: 1 }, options)),
    );

    expect(results.filter((result) => !result.replayed)).toHaveLength(1);
    expect(new Set(results.map((result) => result.events[0]?.eventId)).size).toBe(1);
    expect(formatCredits((await h.ledger.getBalance(balanceId)).balance.balance)).toBe('100');
    expect((await h.ledgerOf(balanceId)).filter(({ event }) => event.type === 'CreditToppedUp')).toHaveLength(1);
  });

  it('a keyed purchase refused by the balance itself (not open yet) buys under its key and body once the balance opens', async () => {
    // openBalance writes the registry row before the stream: a crash in between leaves this.
    const product = await h.createProduct({ bundles: [{ id: 'small', credits: parseCredits('100'), price: { amount: '9.90', currency: 'EUR' }, purchaseOption: true }] });
    const customerId = `customer-${randomUUID()}`;
    const balanceId = randomUUID();
    await createPostgresBalanceRegistry({ pool: db.pool }).registerBalance({ id: balanceId, customerId, productId: product.id });
    const options = { idempotencyKey: `key-${randomUUID()}`, requestHash: 'small x1' };
    await expect(h.purchases.purchase(balanceId, { bundleId: 'small', quantity: 1 }, options)).rejects.toBeInstanceOf(BalanceNotOpenError);

    // The next request for the pair completes the opening; the key was never fenced by that refusal.
    expect((await h.ledger.openBalance({ customerId, productId: product.id, startingBalance: 0n })).balance.balanceId).toBe(balanceId);
    const bought = await h.purchases.purchase(balanceId, { bundleId: 'small', quantity: 1 }, options);

    expect(bought.replayed).toBe(false);
    expect(formatCredits((await h.ledger.getBalance(balanceId)).balance.balance)).toBe('100');
  });

  it('a keyed purchase of a bundle its product never sold is refused without a lasting write (no fence: no twin could be priced)', async () => {
    const { product, balanceId } = await balanceWithBundles();
    // A revision of the product since, so that more than the current one is looked at.
    await h.catalog.updateProduct({ ...product, bundles: product.bundles.filter((bundle) => bundle.id !== 'large') });
    const markers = async () => Number((await db.pool.query<{ n: string }>('SELECT count(*) AS n FROM append_markers')).rows[0]!.n);
    const before = await markers();

    for (const bundleId of ['never-sold-1', 'never-sold-2']) {
      await expect(h.purchases.purchase(balanceId, { bundleId, quantity: 1 }, { idempotencyKey: `key-${randomUUID()}`, requestHash: bundleId })).rejects.toBeInstanceOf(BundleNotFoundError);
    }

    expect(await markers()).toBe(before);
    // A bundle sold in an earlier revision is fenced: a twin priced then may still be in flight.
    await expect(h.purchases.purchase(balanceId, { bundleId: 'large', quantity: 1 }, { idempotencyKey: `key-${randomUUID()}`, requestHash: 'large' })).rejects.toBeInstanceOf(BundleNotFoundError);
    expect(await markers()).toBe(before + 1);
  });

  it('refuses an unknown bundle or balance and a bad quantity, recording nothing', async () => {
    const { balanceId } = await balanceWithBundles();
    await expect(h.purchases.purchase(balanceId, { bundleId: 'huge', quantity: 1 })).rejects.toBeInstanceOf(BundleNotFoundError);
    await expect(h.purchases.purchase('no-such-balance', { bundleId: 'small', quantity: 1 })).rejects.toBeInstanceOf(BalanceNotFoundError);
    await expect(h.purchases.purchase(balanceId, { bundleId: 'small', quantity: 0 })).rejects.toBeInstanceOf(ValidationError);
    expect(await h.ledgerOf(balanceId)).toHaveLength(1);
  });

  it("lists each of the customer's balances with its product's bundles and prices", async () => {
    const { product, customerId, balanceId } = await balanceWithBundles();
    const bare = await h.createProduct();
    const other = await h.ledger.openBalance({ customerId, productId: bare.id, startingBalance: 0n });

    const options = await h.purchases.purchaseOptions(customerId);

    expect(options).toEqual(
      expect.arrayContaining([
        { balanceId, productId: product.id, productName: product.name, bundles: product.bundles },
        { balanceId: other.balance.balanceId, productId: bare.id, productName: bare.name, bundles: [] },
      ]),
    );
    expect(options).toHaveLength(2);
    expect(await h.purchases.purchaseOptions(`customer-${randomUUID()}`)).toEqual([]);
  });
  it("leaves out a product stored invalid, with a warning naming it, and lists the customer's other options", async () => {
    const { product, customerId, balanceId } = await balanceWithBundles();
    const broken = await h.createProduct({ bundles: [{ id: 'small', credits: parseCredits('5'), price: { amount: '1', currency: 'EUR' }, purchaseOption: true }] });
    await h.ledger.openBalance({ customerId, productId: broken.id, startingBalance: 0n });
    // As an older release or a hand edit may have stored it: a bundle without a price.
    await db.pool.query(`UPDATE credit_products SET bundles = '[{"id":"small","credits":"5"}]' WHERE id = $1`, [broken.id]);
    const warnings: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'warn' }, new Writable({ write: (chunk: Buffer, _encoding, done) => done(void warnings.push(JSON.parse(chunk.toString()) as Record<string, unknown>)) }));
    const purchases = createPurchaseService({ catalog: h.catalog, balanceRegistry: createPostgresBalanceRegistry({ pool: db.pool }), ledger: h.ledger, logger });

    expect(await purchases.purchaseOptions(customerId)).toEqual([{ balanceId, productId: product.id, productName: product.name, bundles: product.bundles }]);
    expect(warnings).toEqual([expect.objectContaining({ productId: broken.id, msg: expect.stringContaining('stored invalid') })]);
  });
});
