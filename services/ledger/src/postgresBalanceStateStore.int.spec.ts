import { randomUUID } from 'node:crypto';
import { initialBalanceState, type OpenBalance } from '@tally/domain';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import fc from 'fast-check';
import type { BalanceStateStore } from './balanceStateStore';
import { createPostgresBalanceStateStore } from './postgresBalanceStateStore';
import { arbitraryOpenBalance } from './testing/arbitraryOpenBalance';

jest.setTimeout(120_000);

/** Texts a hand-made encoding of a batch would get wrong: quotes, backslashes, separators, NUL, a lone word NULL, astral characters. */
const AWKWARD_TEXTS = ['"', '\\', '\\"', '{a,b}', 'NULL', 'null', '', ' ', '\u0000', 'line\nbreak', '💳 crédits', "it's", '[1,2]', '\\u0041'];

const open = (fields: Partial<OpenBalance>): OpenBalance => ({
  status: 'open',
  balanceId: 'b',
  customerId: 'c',
  productId: 'p',
  name: 'n',
  lowBalanceThreshold: null,
  balance: 0n,
  held: 0n,
  holds: {},
  overdraftLimit: 0n,
  warned: false,
  updatedAt: '2026-12-04T00:00:00.000Z',
  ...fields,
});

describe('stored balance states (PostgreSQL)', () => {
  let db: TestSchema;
  let store: BalanceStateStore;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'balance_states' });
    store = createPostgresBalanceStateStore({ pool: db.pool });
  });

  afterAll(async () => {
    await db?.drop();
  });

  it.each([false, true])('read back exactly the states a batch wrote, whatever their texts hold (replaceable: %s)', async (replaceable) => {
    await fc.assert(
      fc.asyncProperty(fc.array(arbitraryOpenBalance(), { minLength: 1, maxLength: 30 }), fc.bigInt({ min: 0n, max: 2n ** 62n }), async (states, revision) => {
        const batch = states.map((state) => ({ balanceId: randomUUID(), loaded: { state, revision } }));
        await store.save(batch, { replaceable });
        const found = await store.loadLatest(batch.map(({ balanceId }) => balanceId));
        expect(batch.map(({ balanceId }) => found.get(balanceId))).toEqual(batch.map(({ loaded }) => loaded));
      }),
      { numRuns: 40 },
    );
  });

  it('keep every awkward text in every text field of one batch', async () => {
    const batch = AWKWARD_TEXTS.map((text, i) => ({
      // A stream id is text, which holds no NUL; the states' fields are JSON, which escapes it.
      balanceId: `${randomUUID()}${text.replace('\u0000', '')}`,
      loaded: {
        revision: BigInt(i),
        state: open({ balanceId: text, customerId: text, productId: text, name: text, holds: { [text]: { credits: 1n, expiresAt: text, reference: text } }, updatedAt: text }),
      },
    }));
    await store.save(batch);
    const found = await store.loadLatest(batch.map(({ balanceId }) => balanceId));
    expect(batch.map(({ balanceId }) => found.get(balanceId))).toEqual(batch.map(({ loaded }) => loaded));
    for (const { balanceId, loaded } of batch) expect(await store.load(balanceId)).toEqual(loaded);
  });

  it('keep one replaceable state per balance, the newest, beside the states commands answered from', async () => {
    const balanceId = randomUUID();
    const at = (revision: bigint, name: string) => ({ balanceId, loaded: { revision, state: open({ name }) } });
    await store.save([at(5n, 'answered')]);
    await store.save([at(7n, 'first flush')], { replaceable: true });
    await store.save([at(9n, 'second flush')], { replaceable: true });
    await store.save([at(9n, 'the same revision again')], { replaceable: true });

    expect(await store.loadLatest([balanceId])).toEqual(new Map([[balanceId, at(9n, 'second flush').loaded]]));
    expect(await store.load(balanceId, 8n)).toEqual(at(5n, 'answered').loaded);
    const { rows } = await db.pool.query<{ revision: string; replaceable: boolean }>(
      'SELECT revision, replaceable FROM balance_snapshots WHERE stream_id LIKE $1 ORDER BY revision',
      [`%${balanceId}`],
    );
    expect(rows).toEqual([
      { revision: '5', replaceable: false },
      { revision: '9', replaceable: true },
    ]);
  });

  it('leave unopened balances out: only open states are kept', async () => {
    const balanceId = randomUUID();
    await store.save([{ balanceId, loaded: { revision: -1n, state: initialBalanceState } }]);
    expect(await store.loadLatest([balanceId])).toEqual(new Map());
  });
});
