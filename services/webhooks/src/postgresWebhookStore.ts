import type { Pool } from 'pg';
import { actingKeyParams, rolledBack, withClient } from '@tally/postgres';
import type {
  DueWebhookDelivery,
  WebhookAttempt,
  WebhookDelivery,
  WebhookDeliveryHealth,
  WebhookEndpoint,
  WebhookStore,
} from './webhookStore';

// Endpoints, deliveries and attempts are read under their fields' names (the SELECT lists alias
// the columns), so that only what is not a plain column needs mapping.
type EndpointRow = Omit<WebhookEndpoint, 'previousSecret' | 'afterPosition' | 'disabled'> & {
  previousSecret: string | null;
  previousSecretUntil: Date | null;
  afterPosition: string;
  disabledAt: Date | null;
  disabledReason: string | null;
};
type DeliveryRow = Omit<WebhookDelivery, 'position' | 'nextAttemptAt'> & { position: string; nextAttemptAt: Date };

const ENDPOINT_COLUMNS = `id, url, description, events, secret, previous_secret AS "previousSecret",
  previous_secret_until AS "previousSecretUntil", after_position AS "afterPosition", disabled_at AS "disabledAt",
  disabled_reason AS "disabledReason", created_at AS "createdAt", updated_at AS "updatedAt",
  acting_key(created_by_key_id, created_by_key_name) AS "createdBy", acting_key(updated_by_key_id, updated_by_key_name) AS "updatedBy"`;
const DELIVERY_COLUMNS = `id, endpoint_id AS "endpointId", ledger_event_id AS "ledgerEventId", balance_id AS "balanceId", position,
  event_type AS "eventType", status, attempts, next_attempt_at AS "nextAttemptAt", first_attempt_at AS "firstAttemptAt",
  delivered_at AS "deliveredAt", created_at AS "createdAt"`;

/**
 * The reason of an endpoint paused by a key (`enabled: false`). Tally's own, after giving a
 * delivery up, says what failed; a pause keeps that one, so the endpoint still counts as Tally's.
 */
const PAUSED_REASON = 'disabled by request';

function endpointOf({ previousSecret, previousSecretUntil, afterPosition, disabledAt, disabledReason, ...row }: EndpointRow): WebhookEndpoint {
  return {
    ...row,
    previousSecret: previousSecret === null || previousSecretUntil === null ? null : { secret: previousSecret, until: previousSecretUntil },
    afterPosition: BigInt(afterPosition),
    disabled: disabledAt === null ? null : { at: disabledAt, reason: disabledReason ?? '' },
  };
}

function deliveryOf(row: DeliveryRow): WebhookDelivery {
  return { ...row, position: BigInt(row.position), nextAttemptAt: row.status === 'pending' ? row.nextAttemptAt : null };
}

/**
 * The oldest pending delivery of each enabled endpoint and balance: the only one that may be
 * sent. A loose index scan (one probe of webhook_deliveries_pending_idx per endpoint and balance,
 * the recursion stepping to the next balance) rather than DISTINCT ON, which reads every pending
 * row: with a receiver down for days, 100,000 deliveries waiting in 1,000 queues cost 15 ms per
 * round instead of 290 ms (measured on the shared 2-core machine). The recursion starts from the
 * enabled endpoints only, so a disabled endpoint's queues, which grow for as long as it stays
 * disabled, cost nothing per round.
 */
const HEADS = `WITH RECURSIVE heads AS (
    SELECT n.* FROM webhook_endpoints e CROSS JOIN LATERAL (
      SELECT endpoint_id, balance_id, id, attempts, first_attempt_at, next_attempt_at, created_at FROM webhook_deliveries
      WHERE status = 'pending' AND endpoint_id = e.id ORDER BY balance_id, position LIMIT 1) n
    WHERE e.disabled_at IS NULL
    UNION ALL
    SELECT n.* FROM heads h CROSS JOIN LATERAL (
      SELECT endpoint_id, balance_id, id, attempts, first_attempt_at, next_attempt_at, created_at FROM webhook_deliveries
      WHERE status = 'pending' AND endpoint_id = h.endpoint_id AND balance_id > h.balance_id
      ORDER BY balance_id, position LIMIT 1) n
  )`;

/**
 * A receiver's answer and an error as PostgreSQL text can hold them: it refuses U+0000 (22021),
 * which becomes U+FFFD. Refused, the attempt would not be recorded and the delivery would be sent
 * again without backoff. (A lone surrogate needs nothing here: pg encodes parameters as UTF-8
 * with Buffer, which already writes it as U+FFFD.)
 */
function storableText(text: string | null): string | null {
  return text === null ? null : text.replaceAll('\u0000', '\ufffd');
}

/** Webhook endpoints and deliveries in PostgreSQL (migration 015). */
export function createPostgresWebhookStore(pool: Pool): WebhookStore {
  return {
    async createEndpoint(endpoint) {
      const { rows } = await pool.query<EndpointRow>(
        `INSERT INTO webhook_endpoints (id, url, description, events, secret, after_position, created_by_key_id, created_by_key_name)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${ENDPOINT_COLUMNS}`,
        [endpoint.id, endpoint.url, endpoint.description, endpoint.events, endpoint.secret, endpoint.afterPosition.toString(), ...actingKeyParams(endpoint.createdBy)],
      );
      return endpointOf(rows[0]!);
    },

    async listEndpoints({ limit, after }) {
      const { rows } = await pool.query<EndpointRow>(
        `SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE $1::text IS NULL OR id COLLATE "C" > $1 ORDER BY id COLLATE "C" LIMIT $2`,
        [after ?? null, limit],
      );
      return rows.map(endpointOf);
    },

    async getEndpoint(id) {
      const { rows } = await pool.query<EndpointRow>(`SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1`, [id]);
      return rows[0] === undefined ? undefined : endpointOf(rows[0]);
    },

    async updateEndpoint(id, changes, updatedBy) {
      // Re-enabling (a disabled endpoint, enabled: true) starts the retry period of its pending
      // deliveries again from their next attempt: counted from before the pause, the first
      // failure after a pause longer than the period would give up at once and disable it again.
      // Its given-up (failed) deliveries become pending too, due at once (their next_attempt_at
      // is past): left failed, the later deliveries of their balances would go out ahead of them,
      // out of ledger order. Only the oldest pending one per balance is sent, so they go first.
      // Not one whose balance had a later delivery succeed since (sent again by hand): the
      // receiver already has newer news of that balance, and resent it would come after it.
      // One statement: every part sees the endpoint as it was before the update.
      const { rows } = await pool.query<EndpointRow>(
        `WITH resumed AS (
           UPDATE webhook_deliveries d SET status = 'pending', first_attempt_at = NULL
           WHERE d.endpoint_id = $1 AND d.status IN ('pending', 'failed') AND $6::boolean IS TRUE
             AND EXISTS (SELECT 1 FROM webhook_endpoints WHERE id = $1 AND disabled_at IS NOT NULL)
             AND (d.status = 'pending' OR NOT EXISTS (
               SELECT 1 FROM webhook_deliveries s
               WHERE s.endpoint_id = d.endpoint_id AND s.balance_id = d.balance_id AND s.position > d.position AND s.status = 'succeeded'))
         )
         UPDATE webhook_endpoints SET
           url = COALESCE($2, url),
           description = CASE WHEN $3 THEN $4 ELSE description END,
           events = COALESCE($5, events),
           disabled_at = CASE WHEN $6::boolean IS NULL THEN disabled_at WHEN $6 THEN NULL ELSE COALESCE(disabled_at, now()) END,
           disabled_reason = CASE WHEN $6::boolean IS NULL THEN disabled_reason WHEN $6 THEN NULL
                                  ELSE COALESCE(disabled_reason, $9) END,
           updated_at = now(), updated_by_key_id = $7, updated_by_key_name = $8
         WHERE id = $1 RETURNING ${ENDPOINT_COLUMNS}`,
        [
          id,
          changes.url ?? null,
          changes.description !== undefined,
          changes.description ?? null,
          changes.events ?? null,
          changes.enabled ?? null,
          ...actingKeyParams(updatedBy),
          PAUSED_REASON,
        ],
      );
      return rows[0] === undefined ? undefined : endpointOf(rows[0]);
    },

    async deleteEndpoint(id) {
      const { rowCount } = await pool.query('DELETE FROM webhook_endpoints WHERE id = $1', [id]);
      return (rowCount ?? 0) > 0;
    },

    async rotateSecret(id, secret, previousUntil, updatedBy) {
      const { rows } = await pool.query<EndpointRow>(
        `UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = $3, secret = $2, updated_at = now(),
                updated_by_key_id = $4, updated_by_key_name = $5
         WHERE id = $1 RETURNING ${ENDPOINT_COLUMNS}`,
        [id, secret, previousUntil, ...actingKeyParams(updatedBy)],
      );
      return rows[0] === undefined ? undefined : endpointOf(rows[0]);
    },

    async allEndpoints() {
      const { rows } = await pool.query<EndpointRow>(`SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints`);
      return rows.map(endpointOf);
    },

    async recordDeliveries(deliveries, now) {
      if (deliveries.length === 0) return;
      // One statement for the batch; ON CONFLICT keeps a delivery recorded before (and perhaps
      // already sent) as it is, which is what makes recording a redelivered batch harmless.
      // An endpoint deleted meanwhile has no row to refer to: its deliveries are dropped.
      await pool.query(
        `INSERT INTO webhook_deliveries (id, endpoint_id, ledger_event_id, balance_id, position, event_type, body, next_attempt_at)
         SELECT d.*, $8::timestamptz FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[])
           AS d(id, endpoint_id, ledger_event_id, balance_id, position, event_type, body)
         WHERE EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.endpoint_id)
         ON CONFLICT (id) DO NOTHING`,
        [
          deliveries.map((d) => d.id),
          deliveries.map((d) => d.endpointId),
          deliveries.map((d) => d.ledgerEventId),
          deliveries.map((d) => d.balanceId),
          deliveries.map((d) => d.position.toString()),
          deliveries.map((d) => d.eventType),
          deliveries.map((d) => d.body),
          now,
        ],
      );
    },

    async dueDeliveries(now, limit, excluding = []) {
      // Head of each endpoint's and balance's queue first, then whether it is due: a later
      // delivery of the same balance is never sent while an earlier one waits for its retry.
      // The previous secret signs too until its grace period ends.
      // Endpoints take turns: each one's longest-due delivery, then each one's second, … so that
      // an endpoint with hundreds of retries due cannot fill the batch ahead of another's first.
      // The excluded heads are left out after the recursion (so they still hold back their
      // balance) and before the turns and the limit (so they take no place in the batch).
      const { rows } = await pool.query<DueWebhookDelivery>(
        `${HEADS}, due AS (
           SELECT h.id, h.endpoint_id, h.attempts, h.first_attempt_at, h.next_attempt_at,
                  row_number() OVER (PARTITION BY h.endpoint_id ORDER BY h.next_attempt_at, h.id) AS turn
           FROM heads h WHERE h.next_attempt_at <= $1 AND h.id <> ALL($3::text[])
         )
         SELECT due.id, due.endpoint_id AS "endpointId", e.url,
                CASE WHEN e.previous_secret_until > $1 AND e.previous_secret IS NOT NULL THEN ARRAY[e.secret, e.previous_secret]
                     ELSE ARRAY[e.secret] END AS secrets,
                d.body, due.attempts, due.first_attempt_at AS "firstAttemptAt",
                -- The attempts of this period: a manual retry or re-enabling resets first_attempt_at,
                -- not the total, which the attempt log numbers by. Counted for the batch's few rows only.
                (SELECT count(*)::int FROM webhook_delivery_attempts a
                 WHERE a.delivery_id = due.id AND a.started_at >= due.first_attempt_at) AS "attemptsThisPeriod"
         FROM due
         JOIN webhook_endpoints e ON e.id = due.endpoint_id AND e.disabled_at IS NULL
         JOIN webhook_deliveries d ON d.id = due.id
         ORDER BY due.turn, due.next_attempt_at LIMIT $2`,
        [now, limit, excluding],
      );
      return rows;
    },

    async recordAttempt(deliveryId, attempt, outcome) {
      await withClient(
        pool,
        async (client) => {
          await client.query('BEGIN');
          await client.query(
            // A delivery deleted with its endpoint while the attempt ran has nothing to record.
            `INSERT INTO webhook_delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, response_body)
             SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = $1 FOR KEY SHARE)
             ON CONFLICT DO NOTHING`,
            [deliveryId, attempt.attempt, attempt.startedAt, attempt.durationMs, attempt.statusCode, storableText(attempt.error), storableText(attempt.responseBody)],
          );
          const { rows } = await client.query<{ endpoint_id: string }>(
            `UPDATE webhook_deliveries SET
               status = $2,
               attempts = GREATEST(attempts, $3),
               first_attempt_at = COALESCE(first_attempt_at, $4),
               last_attempt_at = $4,
               next_attempt_at = COALESCE($5, next_attempt_at),
               delivered_at = CASE WHEN $2 = 'succeeded' THEN $6 ELSE delivered_at END
             WHERE id = $1 AND attempts < $3 RETURNING endpoint_id`,
            [
              deliveryId,
              outcome.status,
              attempt.attempt,
              attempt.startedAt,
              outcome.status === 'pending' ? outcome.nextAttemptAt : null,
              new Date(attempt.startedAt.getTime() + attempt.durationMs),
            ],
          );
          if (outcome.status === 'failed' && rows[0] !== undefined) {
            await client.query(
              // Tally's own change: no key made it, so updatedBy says none did.
              `UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = $2, updated_at = now(),
                      updated_by_key_id = NULL, updated_by_key_name = NULL
               WHERE id = $1 AND disabled_at IS NULL`,
              [rows[0].endpoint_id, storableText(outcome.disableReason)],
            );
          }
          await client.query('COMMIT');
        },
        // Returned to the pool once rolled back; destroyed when the rollback failed (a connection
        // left mid-transaction, or one whose rollback timed out, must not serve another caller).
        { reusableAfterFailure: rolledBack },
      );
    },

    async listDeliveries(endpointId, { limit, before }) {
      const { rows } = await pool.query<DeliveryRow>(
        `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries
         WHERE endpoint_id = $1 AND ($2::bigint IS NULL OR position < $2) ORDER BY position DESC LIMIT $3`,
        [endpointId, before?.toString() ?? null, limit],
      );
      const attempts = await pool.query<WebhookAttempt & { deliveryId: string }>(
        `SELECT delivery_id AS "deliveryId", attempt, started_at AS "startedAt", duration_ms AS "durationMs", status_code AS "statusCode",
                error, response_body AS "responseBody"
         FROM webhook_delivery_attempts WHERE delivery_id = ANY($1::text[]) ORDER BY delivery_id, attempt`,
        [rows.map((row) => row.id)],
      );
      const byDelivery = new Map<string, WebhookAttempt[]>();
      for (const { deliveryId, ...attempt } of attempts.rows) {
        const list = byDelivery.get(deliveryId) ?? [];
        list.push(attempt);
        byDelivery.set(deliveryId, list);
      }
      return rows.map((row) => ({ ...deliveryOf(row), attemptLog: byDelivery.get(row.id) ?? [] }));
    },

    async deleteDelivered(before, limit) {
      // A bounded batch by webhook_deliveries_delivered_idx (migration 035): one round never
      // holds locks on more rows than that, however far behind the deletion is. The conditions
      // are repeated outside: a row updated meanwhile (a retry by hand made it pending) is
      // re-checked against the outer ones only, once its lock is released, and must be kept.
      const { rowCount } = await pool.query(
        `DELETE FROM webhook_deliveries WHERE id IN (
           SELECT id FROM webhook_deliveries WHERE status = 'succeeded' AND delivered_at < $1 ORDER BY delivered_at LIMIT $2)
         AND status = 'succeeded' AND delivered_at < $1`,
        [before, limit],
      );
      return rowCount ?? 0;
    },

    async deliveryHealth() {
      // The oldest pending delivery of a queue is its head (recorded in position order; one made
      // pending again, by hand or by re-enabling, is older still), so the heads' oldest is the
      // oldest of all: the sender's loose index scan, not a read of every pending row, which a
      // receiver down for days makes many. Endpoints are few and read whole, as each round does.
      const { rows } = await pool.query<WebhookDeliveryHealth>(
        `${HEADS}
         SELECT (SELECT min(created_at) FROM heads) AS "oldestPendingAt",
                count(*) FILTER (WHERE disabled_reason IS DISTINCT FROM $1)::int AS "disabledByTally",
                count(*) FILTER (WHERE disabled_reason = $1)::int AS paused
         FROM webhook_endpoints WHERE disabled_at IS NOT NULL`,
        [PAUSED_REASON],
      );
      return rows[0]!;
    },

    async retryDelivery(endpointId, deliveryId, now) {
      const { rows } = await pool.query<DeliveryRow>(
        `UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3, first_attempt_at = NULL
         WHERE id = $2 AND endpoint_id = $1 RETURNING ${DELIVERY_COLUMNS}`,
        [endpointId, deliveryId, now],
      );
      return rows[0] === undefined ? undefined : deliveryOf(rows[0]);
    },
  };
}
