import { type ActingKey, formatNullableCredits, parseCredits } from '@tally/domain';
import type { Pool, PoolClient } from 'pg';
import type { Logger } from 'pino';
import { actingKeyParams, inTransaction, isUniqueViolation } from '@tally/postgres';
import { guardedQuery } from './guardedQuery';
import { planFromDto, type PlanItemDto } from './plan';
import type { CreditOverride, OverrideVersion, StoredOverrideVersion, Subscription } from './subscription';
import { PlanNotFoundError, PlanRetiredError, SubscriptionAlreadyExistsError } from './subscriptionErrors';
import type { SchedulableSubscription, SubscriptionStore } from './subscriptionStore';

interface OverrideJson {
  productId: string;
  effectiveFromPeriod: number;
  creditsPerPeriod: string | null;
  lowBalanceThreshold: string | null;
  changedBy: ActingKey | null;
}

type SubscriptionRow = Omit<Subscription, 'overrides' | 'grantedThrough' | 'reservedThrough'> & {
  overrides: OverrideJson[];
  /** Per product: [productId, granted_through (null: none granted yet), reserved through]. */
  watermarks: Array<[string, number | null, number]>;
};
type SchedulableRow = SubscriptionRow & { planName: string; planItems: PlanItemDto[] };

/**
 * The last period reserved of a watermark row `w`: a row a process of the previous release
 * inserted has a NULL reserved_through (it reserves nothing), read as granted_through (GREATEST
 * ignores a NULL), and a reservation is never below what is granted. Migration 041.
 */
const reservedThroughOf = (w: string) => `GREATEST(${w}.reserved_through, ${w}.granted_through)`;

// A subscription with its override versions and watermarks in one round trip, under the
// Subscription's field names so that only the overrides' amounts and the watermarks need reading.
// Watermarks come as [productId, granted, reserved] arrays, not a JSON object: a product id is any
// identifier ("constructor", "toString"), and looked up in a plain object it would find the
// inherited member.
const SUBSCRIPTION_SELECT = `
  SELECT s.id, s.customer_id AS "customerId", s.plan_id AS "planId", s.starts_at AS "startsAt", s.canceled_at AS "canceledAt",
         s.created_at AS "createdAt", s.version, acting_key(s.created_by_key_id, s.created_by_key_name) AS "createdBy",
         acting_key(s.canceled_by_key_id, s.canceled_by_key_name) AS "canceledBy",
         COALESCE((SELECT jsonb_agg(jsonb_build_object(
                             'productId', o.product_id, 'effectiveFromPeriod', o.effective_from_period,
                             'creditsPerPeriod', o.credits_per_period, 'lowBalanceThreshold', o.low_balance_threshold,
                             'changedBy', acting_key(o.changed_by_key_id, o.changed_by_key_name))
                           ORDER BY o.product_id, o.effective_from_period)
                     FROM subscription_overrides AS o WHERE o.subscription_id = s.id), '[]') AS overrides,
         COALESCE((SELECT jsonb_agg(jsonb_build_array(w.product_id, w.granted_through, ${reservedThroughOf('w')}))
                     FROM subscription_grant_watermarks AS w WHERE w.subscription_id = s.id), '[]') AS watermarks`;

const nullableCredits = (text: string | null) => (text === null ? null : parseCredits(text));

function subscriptionFromRow({ watermarks, ...row }: SubscriptionRow): Subscription {
  return {
    ...row,
    grantedThrough: new Map(watermarks.flatMap(([productId, granted]) => (granted === null ? [] : [[productId, granted] as const]))),
    reservedThrough: new Map(watermarks.map(([productId, , reserved]) => [productId, reserved])),
    overrides: row.overrides.map(
      (o): StoredOverrideVersion => ({
        productId: o.productId,
        effectiveFromPeriod: o.effectiveFromPeriod,
        creditsPerPeriod: nullableCredits(o.creditsPerPeriod),
        lowBalanceThreshold: nullableCredits(o.lowBalanceThreshold),
        changedBy: o.changedBy,
      }),
    ),
  };
}

function overridesJson(overrides: readonly (CreditOverride & { effectiveFromPeriod: number })[]): string {
  return JSON.stringify(
    overrides.map((o) => ({
      product_id: o.productId,
      effective_from_period: o.effectiveFromPeriod,
      credits_per_period: formatNullableCredits(o.creditsPerPeriod),
      low_balance_threshold: formatNullableCredits(o.lowBalanceThreshold),
    })),
  );
}

/** Override versions arrive as one JSON parameter ($n) and are read as rows. */
const overrideRecordset = (param: number) =>
  `jsonb_to_recordset($${param}::jsonb) AS x(product_id text, effective_from_period integer, credits_per_period text, low_balance_threshold text)`;

function withPlan({ planName, planItems, ...row }: SchedulableRow): SchedulableSubscription {
  return {
    subscription: subscriptionFromRow(row),
    plan: planFromDto({ id: row.planId, name: planName, items: planItems }),
  };
}

export function createPostgresSubscriptionStore(options: { pool: Pool; logger: Logger }): SubscriptionStore {
  const { pool } = options;
  const logger = options.logger.child({ module: 'subscription-store' });

  async function get(subscriptionId: string, client: Pool | PoolClient = pool): Promise<Subscription | undefined> {
    const { rows } = await client.query<SubscriptionRow>(`${SUBSCRIPTION_SELECT} FROM subscriptions AS s WHERE s.id = $1`, [subscriptionId]);
    return rows[0] === undefined ? undefined : subscriptionFromRow(rows[0]);
  }

  /**
   * The subscription under its row lock, held until `client`'s transaction ends: every change of a
   * subscription takes it first, so changes are made one after the other, each on the state the
   * one before left. A grant takes it to reserve its period (reserveGrant), never while it
   * appends: whoever holds it calls nothing, so it is held for a few statements.
   */
  async function locked(client: PoolClient, subscriptionId: string): Promise<Subscription | undefined> {
    const { rowCount } = await client.query('SELECT 1 FROM subscriptions WHERE id = $1 FOR UPDATE', [subscriptionId]);
    return rowCount === 0 ? undefined : get(subscriptionId, client);
  }

  /** The subscription as the transaction leaves it: what the change answers, never another change's state. */
  async function changed(client: PoolClient, subscriptionId: string): Promise<Subscription> {
    const subscription = await get(subscriptionId, client);
    if (subscription === undefined) throw new Error(`subscription ${subscriptionId} vanished under its lock`);
    return subscription;
  }

  return {
    createSubscription: (subscription) =>
      guardedQuery(async () => {
        let inserted: number;
        try {
          // One statement, so a subscription is never seen without its initial overrides. It
          // inserts only while the plan is offered: a retirement committed before it started is
          // seen, and one racing it orders after it (the subscription came first).
          const { rows } = await pool.query<{ created: number }>(
            `WITH s AS (
               INSERT INTO subscriptions (id, customer_id, plan_id, starts_at, created_by_key_id, created_by_key_name)
               SELECT $1, $2, p.id, $4, $6, $7 FROM plans AS p WHERE p.id = $3 AND p.retired_at IS NULL
               RETURNING id, created_by_key_id, created_by_key_name
             ), o AS (
               INSERT INTO subscription_overrides
                 (subscription_id, product_id, effective_from_period, credits_per_period, low_balance_threshold, changed_by_key_id, changed_by_key_name)
               SELECT s.id, x.product_id, x.effective_from_period, x.credits_per_period, x.low_balance_threshold, s.created_by_key_id, s.created_by_key_name
                 FROM s, ${overrideRecordset(5)}
             )
             SELECT count(*)::integer AS created FROM s`,
            [
              subscription.id,
              subscription.customerId,
              subscription.planId,
              subscription.startsAt,
              overridesJson(subscription.overrides.map((o) => ({ ...o, effectiveFromPeriod: 0 }))),
              ...actingKeyParams(subscription.createdBy),
            ],
          );
          inserted = rows[0]?.created ?? 0;
        } catch (error) {
          if (isUniqueViolation(error)) throw new SubscriptionAlreadyExistsError(`a subscription with id "${subscription.id}" already exists`);
          throw error;
        }
        if (inserted === 0) {
          const { rowCount } = await pool.query('SELECT 1 FROM plans WHERE id = $1', [subscription.planId]);
          if (rowCount === 0) throw new PlanNotFoundError(`no plan with id "${subscription.planId}"`);
          throw new PlanRetiredError(`plan "${subscription.planId}" is retired: it takes no new subscriptions`);
        }
        logger.info(
          { subscriptionId: subscription.id, customerId: subscription.customerId, planId: subscription.planId, createdBy: subscription.createdBy },
          'subscription created',
        );
        const created = await get(subscription.id);
        if (created === undefined) throw new Error(`subscription ${subscription.id} vanished after its insert`);
        return created;
      }),

    getSubscription: (subscriptionId) => guardedQuery(() => get(subscriptionId)),

    changeOverrides: (subscriptionId, decide, changedBy) =>
      guardedQuery(async () => {
        const subscription = await inTransaction(pool, async (client) => {
          const current = await locked(client, subscriptionId);
          if (current === undefined) return undefined;
          const versions: readonly OverrideVersion[] = decide(current);
          await client.query(
            `INSERT INTO subscription_overrides
               (subscription_id, product_id, effective_from_period, credits_per_period, low_balance_threshold, changed_by_key_id, changed_by_key_name)
             SELECT $1, x.product_id, x.effective_from_period, x.credits_per_period, x.low_balance_threshold, $3, $4 FROM ${overrideRecordset(2)}
             ON CONFLICT (subscription_id, product_id, effective_from_period)
             DO UPDATE SET credits_per_period = excluded.credits_per_period,
                           low_balance_threshold = excluded.low_balance_threshold,
                           changed_by_key_id = excluded.changed_by_key_id,
                           changed_by_key_name = excluded.changed_by_key_name,
                           created_at = now()`,
            [subscriptionId, overridesJson(versions), ...actingKeyParams(changedBy)],
          );
          await client.query('UPDATE subscriptions SET version = version + 1 WHERE id = $1', [subscriptionId]);
          return changed(client, subscriptionId);
        });
        if (subscription !== undefined) {
          logger.info({ subscriptionId, version: subscription.version, changedBy }, 'subscription overrides changed');
        }
        return subscription;
      }),

    cancelSubscription: (subscriptionId, decide, canceledBy) =>
      guardedQuery(async () => {
        const subscription = await inTransaction(pool, async (client) => {
          const current = await locked(client, subscriptionId);
          if (current === undefined) return undefined;
          const at = decide(current);
          // The first cancellation stands: its time and key are written once, and only it raises the version.
          if (current.canceledAt !== null) return current;
          await client.query(
            'UPDATE subscriptions SET canceled_at = $2, canceled_by_key_id = $3, canceled_by_key_name = $4, version = version + 1 WHERE id = $1',
            [subscriptionId, at, ...actingKeyParams(canceledBy)],
          );
          return changed(client, subscriptionId);
        });
        if (subscription !== undefined) logger.info({ subscriptionId, canceledBy }, 'subscription canceled');
        return subscription;
      }),

    listCustomerSubscriptions: (customerId, { after, limit }) =>
      guardedQuery(async () => {
        // Served by subscriptions_customer_idx (migration 009).
        const { rows } = await pool.query<SchedulableRow>(
          `${SUBSCRIPTION_SELECT}, p.name AS "planName", p.items AS "planItems"
             FROM subscriptions AS s JOIN plans AS p ON p.id = s.plan_id
            WHERE s.customer_id = $1 AND ($2::text IS NULL OR s.id > $2)
            ORDER BY s.id
            LIMIT $3`,
          [customerId, after, limit],
        );
        return rows.map(withPlan);
      }),

    listSchedulable: ({ after, limit }) =>
      guardedQuery(async () => {
        const { rows } = await pool.query<SchedulableRow>(
          `${SUBSCRIPTION_SELECT}, p.name AS "planName", p.items AS "planItems"
             FROM subscriptions AS s JOIN plans AS p ON p.id = s.plan_id
            WHERE s.grants_completed_at IS NULL AND ($1::text IS NULL OR s.id > $1)
            ORDER BY s.id
            LIMIT $2`,
          [after, limit],
        );
        return rows.map(withPlan);
      }),

    reserveGrant: (subscriptionId, productId, decide) =>
      guardedQuery(() =>
        inTransaction(pool, async (client) => {
          const current = await locked(client, subscriptionId);
          if (current === undefined) return undefined;
          const { reserve, outcome } = decide(current);
          if (reserve !== undefined) {
            // Never lowered: a grant working from an older view may reserve an earlier period.
            await client.query(
              `INSERT INTO subscription_grant_watermarks AS w (subscription_id, product_id, reserved_through) VALUES ($1, $2, $3)
               ON CONFLICT (subscription_id, product_id)
               DO UPDATE SET reserved_through = GREATEST(${reservedThroughOf('w')}, excluded.reserved_through), updated_at = now()`,
              [subscriptionId, productId, reserve],
            );
          }
          return outcome;
        }),
      ),

    recordGranted: (subscriptionId, productId, period) =>
      guardedQuery(async () => {
        // Never lowered (GREATEST ignores a NULL: none granted yet): two grants may report out of order.
        await pool.query(
          `INSERT INTO subscription_grant_watermarks AS w (subscription_id, product_id, granted_through, reserved_through) VALUES ($1, $2, $3, $3)
           ON CONFLICT (subscription_id, product_id)
           DO UPDATE SET granted_through = GREATEST(w.granted_through, excluded.granted_through), updated_at = now()`,
          [subscriptionId, productId, period],
        );
      }),

    markGrantsCompleted: (subscriptionId) =>
      guardedQuery(async () => {
        await pool.query(
          'UPDATE subscriptions SET grants_completed_at = now() WHERE id = $1 AND canceled_at IS NOT NULL AND grants_completed_at IS NULL',
          [subscriptionId],
        );
        logger.info({ subscriptionId }, 'canceled subscription granted its last period');
      }),
  };
}
