import type { ActingKey } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import { actingKeyParams, textArrayLiteral } from '@tally/postgres';
import type { Pool } from 'pg';
import { AutoRechargeNotSetError, BalanceNotFoundError, WarningLimitNotSetError } from './ledgerErrors';
import type { BalanceRegistry } from './balanceRegistry';
import type { LedgerService } from './ledgerService';
import { guarded } from './postgresBalanceStateStore';
import type { PurchaseRequest, PurchaseService } from './purchaseService';

/** A balance's auto-recharge: below its warning limit, it buys `quantity` of its product's bundle `bundleId`. */
export interface AutoRecharge {
  readonly balanceId: string;
  readonly bundleId: string;
  readonly quantity: number;
  /** Only low-balance warnings after this event store position recharge (the head when it was set). */
  readonly sincePosition: bigint;
  readonly updatedAt: Date;
  /** The API key (or console session) that set it; null when set without one. */
  readonly updatedBy: ActingKey | null;
  /** When it last bought. */
  readonly lastRechargedAt: Date | null;
  /** When and why its last purchase was refused, until it buys again or is set anew. */
  readonly lastRefusal: { readonly at: Date; readonly reason: string } | null;
}

/** What handling one warning came to, as the setting keeps it. */
export type AutoRechargeOutcome = { readonly kind: 'bought'; readonly at: Date } | { readonly kind: 'refused'; readonly at: Date; readonly reason: string };

export interface AutoRecharges {
  /** Throws BalanceNotFoundError for an unknown balance, AutoRechargeNotSetError when it has none. */
  get(balanceId: string): Promise<AutoRecharge>;
  /**
   * Sets (or replaces) the balance's auto-recharge, from the event store's head on: a warning of
   * the past never recharges. Refused as a purchase of it would be (unknown balance or bundle,
   * a quantity out of range) and, with WarningLimitNotSetError, for a balance that has no warning
   * limit, since nothing would ever make it buy.
   */
  set(balanceId: string, request: PurchaseRequest, by?: ActingKey): Promise<AutoRecharge>;
  /** Turns it off. Throws as `get`. */
  remove(balanceId: string): Promise<void>;
  /** The auto-recharges of these balances, those that have one: what the processor reads per batch. */
  ofBalances(balanceIds: readonly string[]): Promise<ReadonlyMap<string, AutoRecharge>>;
  /** Keeps what handling a warning came to with the setting (none if it was turned off meanwhile). */
  recordOutcome(balanceId: string, outcome: AutoRechargeOutcome): Promise<void>;
}

interface AutoRechargeRow {
  balanceId: string;
  bundleId: string;
  quantity: number;
  sincePosition: string;
  updatedAt: Date;
  updatedBy: ActingKey | null;
  lastRechargedAt: Date | null;
  lastRefusedAt: Date | null;
  lastRefusal: string | null;
}

const COLUMNS = `balance_id AS "balanceId", bundle_id AS "bundleId", quantity, since_position::text AS "sincePosition",
  updated_at AS "updatedAt", acting_key(updated_by_key_id, updated_by_key_name) AS "updatedBy",
  last_recharged_at AS "lastRechargedAt", last_refused_at AS "lastRefusedAt", last_refusal AS "lastRefusal"`;

const fromRow = ({ lastRefusedAt, lastRefusal, sincePosition, ...row }: AutoRechargeRow): AutoRecharge => ({
  ...row,
  sincePosition: BigInt(sincePosition),
  lastRefusal: lastRefusedAt === null || lastRefusal === null ? null : { at: lastRefusedAt, reason: lastRefusal },
});

/** Auto-recharge settings in PostgreSQL (`auto_recharges`, migration 030), checked as a purchase is. */
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
      return row !== undefined ? fromRow(row) : notSet(balanceId);
    },

    async set(balanceId, request, by) {
      // Checked as the purchase it will make: the balance, its product's bundle, the amount.
      await options.purchases.quote(balanceId, request);
      const { balance } = await options.ledger.getBalance(balanceId);
      if (balance.lowBalanceThreshold === null) {
        throw new WarningLimitNotSetError(`credit balance "${balanceId}" has no warning limit: auto-recharge buys when the low-balance warning fires, so set one first`);
      }
      // Read after the checks: every warning stored from here on is one it acts on.
      const since = await options.eventStore.headPosition();
      const { rows } = await guarded(() =>
        pool.query<AutoRechargeRow>(
          `INSERT INTO auto_recharges (balance_id, bundle_id, quantity, since_position, updated_by_key_id, updated_by_key_name)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (balance_id) DO UPDATE SET bundle_id = excluded.bundle_id, quantity = excluded.quantity, since_position = excluded.since_position,
             updated_at = now(), updated_by_key_id = excluded.updated_by_key_id, updated_by_key_name = excluded.updated_by_key_name,
             -- A new setting starts without the old one's refusal (its bundle may be the fix).
             last_refused_at = NULL, last_refusal = NULL
           RETURNING ${COLUMNS}`,
          [balanceId, request.bundleId, request.quantity, since.toString(), ...actingKeyParams(by)],
        ),
      );
      return fromRow(rows[0]!);
    },

    async remove(balanceId) {
      const { rowCount } = await guarded(() => pool.query('DELETE FROM auto_recharges WHERE balance_id = $1', [balanceId]));
      if (rowCount === 0) await notSet(balanceId);
    },

    async ofBalances(balanceIds) {
      if (balanceIds.length === 0) return new Map();
      return new Map((await read(balanceIds)).map((row) => [row.balanceId, fromRow(row)]));
    },

    async recordOutcome(balanceId, outcome) {
      await guarded(() =>
        outcome.kind === 'bought'
          ? pool.query('UPDATE auto_recharges SET last_recharged_at = $2, last_refused_at = NULL, last_refusal = NULL WHERE balance_id = $1', [balanceId, outcome.at])
          : pool.query('UPDATE auto_recharges SET last_refused_at = $2, last_refusal = $3 WHERE balance_id = $1', [balanceId, outcome.at, outcome.reason.slice(0, 1000)]),
      );
    },
  };
}
