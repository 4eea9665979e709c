import { isBelowThreshold, ValidationError, type ActingKey, type Micros } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import { actingKeyParams, inTransaction, textArrayLiteral } from '@tally/postgres';
import type { Pool } from 'pg';
import { AutoRechargeNotSetError, BalanceNotFoundError, WarningLimitNotSetError } from './ledgerErrors';
import type { BalanceRegistry } from './balanceRegistry';
import type { LedgerService } from './ledgerService';
import { guarded } from './postgresBalanceStateStore';
import type { BundleTerms, PurchaseRequest, PurchaseService } from './purchaseService';

/** A balance's auto-recharge: below its warning limit, it buys `quantity` of its product's bundle `bundleId`. */
export interface AutoRecharge {
  readonly balanceId: string;
  readonly bundleId: string;
  readonly quantity: number;
  /**
   * Only low-balance warnings after this event store position recharge: the head when it was first
   * set (a replacement keeps it, so a warning stored before and not yet handled still buys).
   */
  readonly sincePosition: bigint;
  /** Set on the portal: buys only a bundle the portal offers (a purchase option) when a warning fires, as the setting was checked. */
  readonly purchaseOptionsOnly: boolean;
  readonly updatedAt: Date;
  /** The API key (or console session) that set it; null when set without one. */
  readonly updatedBy: ActingKey | null;
  /** When it last bought. */
  readonly lastRechargedAt: Date | null;
  /** When and why its last purchase was refused, until it buys again or is set anew. */
  readonly lastRefusal: { readonly at: Date; readonly reason: string } | null;
  /** At most this many purchases for the warnings of one calendar month (UTC); null: no limit. */
  readonly monthlyLimit: number | null;
  /** The purchases it made for warnings of the current calendar month (UTC), by PostgreSQL's clock. */
  readonly rechargesThisMonth: number;
  /**
   * The bundle's terms when it was set (quoted then, as a purchase's `expected`): it buys only at
   * these, refusing a bundle changed since until set again. Null for a setting stored before
   * terms were kept (migration 037): it buys at the catalog's terms of the moment.
   */
  readonly terms: BundleTerms | null;
}

/**
 * A setting as `set` answers it (and the API's GET, from its balance read), with whether the
 * balance is below its warning limit now (isBelowThreshold; on `set`, read after its `since`).
 * Then its warning has fired already: a new setting buys at the next one, after the balance is
 * back at the limit (a setting never buys for a warning before it), which the caller should know.
 * Every warning `set` races with is either bought for, or before `since` and counted here.
 */
export interface AutoRechargeStatus extends AutoRecharge {
  readonly belowWarningLimit: boolean;
}

/** What a balance's auto-recharge is set to: the purchase it makes, and how many a month at most. */
export interface AutoRechargeRequest extends PurchaseRequest {
  /** 1 to MAX_MONTHLY_LIMIT; null or absent: no limit. */
  readonly monthlyLimit?: number | null;
}

export const MAX_MONTHLY_LIMIT = 1000;

/** The advisory lock class (with the table's oid) between set's insert and the processor's settings read. */
export const SETTINGS_LOCK_CLASS = 1952541799;

/** The first day of a time's calendar month in UTC (`2026-12-01`), as the purchases are counted by. */
export function monthOf(at: Date): string {
  return `${at.toISOString().slice(0, 7)}-01`;
}

/** What handling one warning came to, as the setting keeps it. */
export type AutoRechargeOutcome =
  | {
      readonly kind: 'bought';
      readonly at: Date;
      /** The warning it bought for, and that warning's month (monthOf its stored time): what the limit counts. */
      readonly warningEventId: string;
      readonly warningMonth: string;
    }
  | { readonly kind: 'refused'; readonly at: Date; readonly reason: string };

export interface AutoRecharges {
  /**
   * The setting alone: one PostgreSQL read, nothing of the balance (the API answers whether it is
   * below its warning limit from its balance read: the read model, with its fallback and budget).
   * Throws BalanceNotFoundError for an unknown balance, AutoRechargeNotSetError when it has none.
   */
  get(balanceId: string): Promise<AutoRecharge>;
  /**
   * Sets (or replaces) the balance's auto-recharge. A new one acts from the event store's head on:
   * a warning of the past never recharges (a balance below its limit already buys at its next
   * warning, after it is back at the limit). A replacement keeps acting from where the setting it
   * replaces did: a warning stored but not yet handled buys with the new setting. Refused as a purchase of it would be (unknown balance or bundle,
   * a quantity out of range) and, with WarningLimitNotSetError, for a balance that has no warning
   * limit, since nothing would ever make it buy. `signal` ends the wait for the balance's state, as
   * ledger.getBalance's does (a request's load budget): BalanceLoadingError, nothing set.
   */
  set(balanceId: string, request: AutoRechargeRequest, by?: ActingKey, options?: { readonly signal?: AbortSignal | undefined }): Promise<AutoRechargeStatus>;
  /** Turns it off. Throws as `get`. */
  remove(balanceId: string): Promise<void>;
  /**
   * The auto-recharges of these balances, those that have one: what the processor reads per batch,
   * with `readThrough`, the last position of the batch it read them for (see set).
   */
  ofBalances(balanceIds: readonly string[], readThrough: bigint): Promise<ReadonlyMap<string, AutoRecharge>>;
  /**
   * Keeps what handling a warning came to with the setting (none if it was turned off meanwhile);
   * a purchase is also counted for its warning's month, once however often it is recorded.
   */
  recordOutcome(balanceId: string, outcome: AutoRechargeOutcome): Promise<void>;
  /** The purchases made for the balance's warnings of `month` (monthOf), but for the one of `exceptWarningEventId`. */
  purchasesInMonth(balanceId: string, month: string, exceptWarningEventId: string): Promise<number>;
}

interface AutoRechargeRow {
  balanceId: string;
  bundleId: string;
  quantity: number;
  sincePosition: string;
  purchaseOptionsOnly: boolean;
  updatedAt: Date;
  updatedBy: ActingKey | null;
  lastRechargedAt: Date | null;
  lastRefusedAt: Date | null;
  lastRefusal: string | null;
  monthlyLimit: number | null;
  rechargesThisMonth: number;
  termsCredits: string | null;
  termsPriceAmount: string | null;
  termsCurrency: string | null;
}

const COLUMNS = `balance_id AS "balanceId", bundle_id AS "bundleId", quantity, since_position::text AS "sincePosition", purchase_options_only AS "purchaseOptionsOnly",
  updated_at AS "updatedAt", acting_key(updated_by_key_id, updated_by_key_name) AS "updatedBy",
  last_recharged_at AS "lastRechargedAt", last_refused_at AS "lastRefusedAt", last_refusal AS "lastRefusal", monthly_limit AS "monthlyLimit",
  (SELECT count(*)::int FROM auto_recharge_purchases AS p WHERE p.balance_id = auto_recharges.balance_id
     AND p.warning_month = date_trunc('month', now() AT TIME ZONE 'UTC')::date) AS "rechargesThisMonth",
  terms_credits::text AS "termsCredits", terms_price_amount AS "termsPriceAmount", terms_currency AS "termsCurrency"`;

const fromRow = ({ lastRefusedAt, lastRefusal, sincePosition, termsCredits, termsPriceAmount, termsCurrency, ...row }: AutoRechargeRow): AutoRecharge => ({
  ...row,
  sincePosition: BigInt(sincePosition),
  terms: termsCredits === null || termsPriceAmount === null || termsCurrency === null ? null : { credits: BigInt(termsCredits) as Micros, price: { amount: termsPriceAmount, currency: termsCurrency } },
  lastRefusal: lastRefusedAt === null || lastRefusal === null ? null : { at: lastRefusedAt, reason: lastRefusal },
});

/** Auto-recharge settings in PostgreSQL (`auto_recharges`, migrations 030-032, 036-039), checked as a purchase is. */
export function createAutoRecharges(options: {
  readonly pool: Pool;
  readonly balanceRegistry: Pick<BalanceRegistry, 'getBalance'>;
  readonly purchases: Pick<PurchaseService, 'quote'>;
  readonly ledger: Pick<LedgerService, 'getBalance'>;
  readonly eventStore: Pick<EventStore, 'headPosition'>;
}): AutoRecharges {
  const { pool } = options;
  const read = (balanceIds: readonly string[]) =>
    guarded(async () => (await pool.query<AutoRechargeRow>(`SELECT ${COLUMNS} FROM auto_recharges WHERE balance_id = ANY($1::text[])`, [textArrayLiteral(balanceIds)])).rows);

  /** Why a balance has no setting to answer: it is unknown (404 balance_not_found), or has none. */
  async function notSet(balanceId: string): Promise<never> {
    if ((await options.balanceRegistry.getBalance(balanceId)) === undefined) throw new BalanceNotFoundError(`no credit balance with id "${balanceId}"`);
    throw new AutoRechargeNotSetError(`credit balance "${balanceId}" has no auto-recharge`);
  }

  return {
    async get(balanceId) {
      const [row] = await read([balanceId]);
      if (row === undefined) return notSet(balanceId);
      return fromRow(row);
    },

    async set(balanceId, request, by, { signal } = {}) {
      const monthlyLimit = request.monthlyLimit ?? null;
      if (monthlyLimit !== null && (!Number.isInteger(monthlyLimit) || monthlyLimit < 1 || monthlyLimit > MAX_MONTHLY_LIMIT)) {
        throw new ValidationError(`monthlyLimit must be an integer from 1 to ${MAX_MONTHLY_LIMIT}, or null for no limit`);
      }
      // Checked as the purchase it will make: the balance, its product's bundle, the amount.
      const purchaseOptionsOnly = request.purchaseOptionsOnly === true;
      // Its terms as quoted now (or 409 purchase_terms_changed against those the caller was shown):
      // the ones it buys at.
      const quoted = await options.purchases.quote(
        balanceId,
        {
          bundleId: request.bundleId,
          quantity: request.quantity,
          purchaseOptionsOnly,
          ...(request.expected !== undefined ? { expected: request.expected } : {}),
        },
        'auto-recharge was not changed',
      );
      const unitCredits = quoted.credits / BigInt(quoted.quantity);
      const load = signal !== undefined ? { signal } : undefined;
      const checked = await options.ledger.getBalance(balanceId, load);
      if (checked.balance.lowBalanceThreshold === null) {
        throw new WarningLimitNotSetError(`credit balance "${balanceId}" has no warning limit: auto-recharge buys when the low-balance warning fires, so set one first`);
      }
      // Every warning is acted on by this setting, or is at or before `since` and then
      // belowWarningLimit (the balance read after `since`) says the balance is below. The processor
      // reads a batch's settings (ofBalances) after it read the batch, in one transaction that
      // holds this lock exclusively and raises R (auto_recharge_settings_read) to the batch's last
      // position; this transaction holds it shared, reads R and stores since = max(head, R). The
      // lock orders the two: if the processor's read commits first, R covers its batch, whose
      // warnings are then at or before `since`; if it starts after this commits, its read sees the
      // setting. A warning at or before `since` was stored before the head read or read by the
      // processor, so before the balance read below. No connection is held across the head or
      // balance read, which take their own from the same pool: held, a pool of one (or ten such
      // PUTs at once, the processor's read waiting behind them) would have none left to give.
      const since0 = await options.eventStore.headPosition();
      const row = await guarded(() =>
        inTransaction(pool, async (client) => {
          // The marker: this upsert gives the terms (migration 039 drops them from an upsert without it, an API of the release before terms).
          await client.query(
            `SELECT pg_advisory_xact_lock_shared(${SETTINGS_LOCK_CLASS}, 'auto_recharges'::regclass::oid::integer), set_config('tally.auto_recharge_terms', 'given', true)`,
          );
          const { rows } = await client.query<AutoRechargeRow>(
            `INSERT INTO auto_recharges (balance_id, bundle_id, quantity, since_position, updated_by_key_id, updated_by_key_name, monthly_limit, purchase_options_only,
               terms_credits, terms_price_amount, terms_currency)
             VALUES ($1, $2, $3, GREATEST($4::bigint, (SELECT read_through FROM auto_recharge_settings_read)), $5, $6, $7, $8, $9, $10, $11)
             -- A replacement keeps its since: a warning stored before it but not yet handled would
             -- otherwise be skipped, and with that warning outstanding no new one fires while the
             -- balance stays below its limit, so it would never buy again.
             ON CONFLICT (balance_id) DO UPDATE SET bundle_id = excluded.bundle_id, quantity = excluded.quantity, since_position = auto_recharges.since_position,
               monthly_limit = excluded.monthly_limit, purchase_options_only = excluded.purchase_options_only,
               terms_credits = excluded.terms_credits, terms_price_amount = excluded.terms_price_amount, terms_currency = excluded.terms_currency,
               updated_at = now(), updated_by_key_id = excluded.updated_by_key_id, updated_by_key_name = excluded.updated_by_key_name,
               -- A new setting starts without the old one's refusal (its bundle may be the fix).
               last_refused_at = NULL, last_refusal = NULL
             RETURNING ${COLUMNS}`,
            [balanceId, request.bundleId, request.quantity, since0.toString(), ...actingKeyParams(by), monthlyLimit, purchaseOptionsOnly, unitCredits.toString(), quoted.unitPrice, quoted.currency],
          );
          return rows[0]!;
        }),
      );
      // Read after the commit, so after `since`: it counts every warning at or before it. Its own
      // read of the stream's tail after the state loaded above (`from`): a load another request
      // started before a warning, still running, may have read the tail before it. Not within the
      // load budget: the setting is stored, so BalanceLoadingError ("nothing was set") would be
      // false, and the tail is what was stored during this call.
      const { balance } = await options.ledger.getBalance(balanceId, { from: checked });
      return { ...fromRow(row), belowWarningLimit: isBelowThreshold(balance) };
    },

    async remove(balanceId) {
      const { rowCount } = await guarded(() => pool.query('DELETE FROM auto_recharges WHERE balance_id = $1', [balanceId]));
      if (rowCount === 0) await notSet(balanceId);
    },

    async ofBalances(balanceIds, readThrough) {
      if (balanceIds.length === 0) return new Map();
      // Exclusive against set's insert, and R moved with the read: see set.
      const rows = await guarded(() =>
        inTransaction(pool, async (client) => {
          await client.query(`SELECT pg_advisory_xact_lock(${SETTINGS_LOCK_CLASS}, 'auto_recharges'::regclass::oid::integer)`);
          const read = (await client.query<AutoRechargeRow>(`SELECT ${COLUMNS} FROM auto_recharges WHERE balance_id = ANY($1::text[])`, [textArrayLiteral(balanceIds)])).rows;
          // An upsert: a missing row (deleted by hand) must not leave R behind unnoticed.
          await client.query(
            `INSERT INTO auto_recharge_settings_read (read_through) VALUES ($1::bigint)
             ON CONFLICT (only_row) DO UPDATE SET read_through = GREATEST(auto_recharge_settings_read.read_through, excluded.read_through)`,
            [readThrough.toString()],
          );
          return read;
        }),
      );
      return new Map(rows.map((row) => [row.balanceId, fromRow(row)]));
    },

    async recordOutcome(balanceId, outcome) {
      await guarded(() =>
        outcome.kind === 'bought'
          ? // One statement: the count and the note move together. The warning's id keys the count,
            // so a warning handled again (a replayed purchase) is counted once.
            pool.query(
              `WITH counted AS (
                 INSERT INTO auto_recharge_purchases (warning_event_id, balance_id, warning_month, bought_at) VALUES ($3, $1, $4::date, $2)
                 ON CONFLICT (warning_event_id) DO NOTHING
               )
               UPDATE auto_recharges SET last_recharged_at = $2, last_refused_at = NULL, last_refusal = NULL WHERE balance_id = $1`,
              [balanceId, outcome.at, outcome.warningEventId, outcome.warningMonth],
            )
          : pool.query('UPDATE auto_recharges SET last_refused_at = $2, last_refusal = $3 WHERE balance_id = $1', [balanceId, outcome.at, outcome.reason.slice(0, 1000)]),
      );
    },

    async purchasesInMonth(balanceId, month, exceptWarningEventId) {
      const { rows } = await guarded(() =>
        pool.query<{ count: number }>(
          'SELECT count(*)::int AS count FROM auto_recharge_purchases WHERE balance_id = $1 AND warning_month = $2::date AND warning_event_id <> $3',
          [balanceId, month, exceptWarningEventId],
        ),
      );
      return rows[0]!.count;
    },
  };
}
