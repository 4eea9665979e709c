import { balanceIdOfStream, fromStoredLedgerEvent } from '@tally/domain';
import type { EventStore, RecordedEvent } from '@tally/event-store';
import { inTransaction } from '@tally/postgres';
import {
  createCheckpointedProcessor,
  createPostgresCheckpointStore,
  type CheckpointedProcessor,
  type CheckpointStore,
  type ProcessorLease,
  type ProcessorMetrics,
} from '@tally/runtime';
import type { Pool } from 'pg';
import type { Logger } from 'pino';

/** The processor's (and its lease's and checkpoint row's) name; migration 019 resets it. */
export const CONSUMPTION_PROJECTION = 'consumption-projection';

interface ConsumptionProjectorOptions {
  readonly eventStore: EventStore;
  /** Holds `consumption_buckets` and the checkpoint (subscription_checkpoints). */
  readonly pool: Pool;
  readonly logger: Logger;
  /** Processes sharing the database take turns (an advisory lock); default: a lease with the runtime's defaults. */
  readonly lease?: Omit<ProcessorLease, 'pool'>;
  readonly batchSize?: number;
  readonly lagRefreshMs?: number;
  /** Where the lag and lease gauges go (tally_consumption_*); none without it. */
  readonly metrics?: ProcessorMetrics['registry'];
}

const HOUR_MS = 3_600_000;

/** One row's worth of a batch: consumption of one balance in one hour by one event name. */
interface BucketSum {
  readonly balanceId: string;
  readonly start: Date;
  readonly event: string;
  microCredits: bigint;
  /** Of those, given back by refunds (made whenever): the credits stay counted, as the ledger keeps the charge. */
  refundedMicroCredits: bigint;
  entries: number;
}

/**
 * Keeps `consumption_buckets` (migration 014) from the event store's subscription, through the
 * runtime's one checkpointed processor, so it works with either event store. Events are decoded by
 * the one stored-event mapping (the domain's fromStoredLedgerEvent), so the sums do not depend on how the
 * store encodes them.
 *
 * Exactly once per event: the batch's sums and its checkpoint are written in one PostgreSQL
 * statement when the checkpoint is still below the batch (the usual case, one round trip), and
 * otherwise in one transaction, which first locks the checkpoint row and adds only the events
 * after the position it holds. A replayed batch (a crash before the processor's own bookkeeping, a deposed lease
 * holder still finishing a batch while the next one works) finds the checkpoint already past its
 * events and adds nothing; a failed transaction adds nothing and moves nothing, and is retried.
 * An event that cannot be decoded is skipped with its reason logged: it must not stall the
 * projection behind it (the ledger's own fold would refuse it the same way).
 */
export function createConsumptionProjector(options: ConsumptionProjectorOptions): CheckpointedProcessor {
  const { pool } = options;
  const logger = options.logger.child({ module: 'consumptionProjector' });
  const { checkpoints, handle } = createConsumptionProjection({ pool, eventStore: options.eventStore, logger });
  return createCheckpointedProcessor({
    name: CONSUMPTION_PROJECTION,
    role: 'consumption projection',
    eventStore: options.eventStore,
    checkpoints,
    lease: { pool, ...options.lease },
    logger,
    what: 'projecting consumption',
    ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
    ...(options.lagRefreshMs !== undefined ? { lagRefreshMs: options.lagRefreshMs } : {}),
    handle,
    metrics: options.metrics && {
      registry: options.metrics,
      lagEvents: { name: 'tally_consumption_lag_events', help: 'Event store positions not yet in the consumption buckets' },
      lagSeconds: { name: 'tally_consumption_lag_seconds', help: 'Age of the oldest event not yet in the consumption buckets' },
      leading: { name: 'tally_consumption_projecting', help: '1 while this process holds the consumption projection lease and projects, 0 while it stands by' },
    },
  });
}

/** The projection's side of the processor: its checkpoint store and its batch handler. */
interface ConsumptionProjection {
  readonly checkpoints: CheckpointStore;
  /**
   * Adds a batch's consumption and moves the checkpoint past it, once however often it is handed
   * over; `{ restart }` when the checkpoint is missing or behind the batch (a reset), so nothing is skipped.
   */
  handle(events: readonly RecordedEvent[]): Promise<void | { readonly restart: string }>;
}

export function createConsumptionProjection(options: {
  readonly pool: Pool;
  /** Where a refund's charge is read, by its id. */
  readonly eventStore: Pick<EventStore, 'readEventsById'>;
  readonly logger: Logger;
}): ConsumptionProjection {
  const { pool, logger } = options;

  const stored = createPostgresCheckpointStore(pool);
  /**
   * load() makes the row (at 0) when there is none, so a row missing later means a reset, which
   * handle() answers with a restart. save() has nothing to do: handle() moved the checkpoint in the
   * transaction of the sums.
   */
  const checkpoints: CheckpointStore = {
    load: async (name) => {
      await pool.query('INSERT INTO subscription_checkpoints (name, position) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING', [name]);
      return stored.load(name);
    },
    save: async () => {},
  };

  /** A stored event decoded, or undefined (logged) when it cannot be: it must not stall the projection. */
  function decoded(recorded: RecordedEvent, what: string) {
    try {
      return fromStoredLedgerEvent(recorded);
    } catch (error) {
      logger.warn({ err: error, position: recorded.position.toString(), eventId: recorded.id, streamId: recorded.streamId }, `skipping a ${what} that cannot be decoded`);
      return undefined;
    }
  }

  /**
   * The batch's consumption by balance, hour and event name, and what refunds gave back of it: a
   * refund counts in the bucket of the charge it refunds (the hour that usage was metered in, its
   * event name), read by the charge's id, so a chart can show what usage cost once refunds are
   * given back. A charge is immutable and stored before its refund, so the read gives the same
   * bucket whenever the batch is handled. `entries` counts charges; a refund leaves it.
   */
  async function sumsOf(events: readonly RecordedEvent[]): Promise<BucketSum[]> {
    const sums = new Map<string, BucketSum>();
    const add = (balanceId: string, charge: RecordedEvent, occurredAt: string, event: string, amounts: { charged: bigint; refunded: bigint; entries: number }) => {
      // The hour the charge occurred in: when the consumer metered the usage (the charge's
      // occurredAt), not the usage event's own timestamp, which a producer sets as it likes (a
      // backlog counts in the hours it is worked off, as statements count it). When it was
      // recorded for an event without a readable time.
      const occurred = Date.parse(occurredAt);
      const at = Number.isNaN(occurred) ? charge.recordedAt.getTime() : occurred;
      const start = new Date(Math.floor(at / HOUR_MS) * HOUR_MS);
      const key = JSON.stringify([balanceId, start.getTime(), event]);
      const sum = sums.get(key);
      if (sum === undefined) sums.set(key, { balanceId, start, event, microCredits: amounts.charged, refundedMicroCredits: amounts.refunded, entries: amounts.entries });
      else {
        sum.microCredits += amounts.charged;
        sum.refundedMicroCredits += amounts.refunded;
        sum.entries += amounts.entries;
      }
    };
    /** A charge's consumption: its balance, and the event decoded. */
    const chargeOf = (recorded: RecordedEvent) => {
      const balanceId = balanceIdOfStream(recorded.streamId);
      const event = balanceId === undefined ? undefined : decoded(recorded, 'CreditConsumed event');
      return balanceId === undefined || event?.type !== 'CreditConsumed' ? undefined : { balanceId, event };
    };
    const refunds: Array<{ readonly chargeId: string; readonly credits: bigint }> = [];
    for (const recorded of events) {
      if (recorded.type === 'CreditConsumed') {
        const charge = chargeOf(recorded);
        if (charge !== undefined) add(charge.balanceId, recorded, charge.event.occurredAt, charge.event.usage?.event ?? '', { charged: charge.event.credits, refunded: 0n, entries: 1 });
      } else if (recorded.type === 'CreditToppedUp' && balanceIdOfStream(recorded.streamId) !== undefined) {
        const topUp = decoded(recorded, 'CreditToppedUp event');
        if (topUp?.type === 'CreditToppedUp' && topUp.source === 'refund' && topUp.refund !== null) refunds.push({ chargeId: topUp.refund.entryId, credits: topUp.credits });
      }
    }
    if (refunds.length > 0) {
      // One read for the batch's refunds: their charges by id.
      const charges = new Map((await options.eventStore.readEventsById([...new Set(refunds.map((refund) => refund.chargeId))])).map((recorded) => [recorded.id, recorded]));
      for (const { chargeId, credits } of refunds) {
        const recorded = charges.get(chargeId);
        const charge = recorded === undefined ? undefined : chargeOf(recorded);
        if (recorded === undefined || charge === undefined) {
          logger.warn({ chargeId }, 'a refund whose charge is not a stored CreditConsumed: left out of the consumption');
          continue;
        }
        add(charge.balanceId, recorded, charge.event.occurredAt, charge.event.usage?.event ?? '', { charged: 0n, refunded: credits, entries: 0 });
      }
    }
    // In no particular order: writers take the checkpoint row's lock first, so they never interleave.
    return [...sums.values()];
  }

  /** The batch's sums as the statements' array parameters, in unnest's column order. */
  function bucketColumns(sums: readonly BucketSum[]): unknown[] {
    return [
      sums.map((sum) => sum.balanceId),
      sums.map((sum) => sum.start),
      sums.map((sum) => sum.event),
      // Decimal strings: micro-credits beyond bigint reach numeric exactly.
      sums.map((sum) => sum.microCredits.toString()),
      sums.map((sum) => sum.refundedMicroCredits.toString()),
      sums.map((sum) => sum.entries),
    ];
  }

  const ADD_BUCKETS = `INSERT INTO consumption_buckets AS b (balance_id, bucket_start, event, micro_credits, refunded_micro_credits, entries)
           SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::numeric[], $5::numeric[], $6::bigint[])`;
  const ON_BUCKET = `ON CONFLICT (balance_id, bucket_start, event) DO UPDATE
             SET micro_credits = b.micro_credits + excluded.micro_credits,
                 refunded_micro_credits = b.refunded_micro_credits + excluded.refunded_micro_credits,
                 entries = b.entries + excluded.entries`;

  const ADD_IF_AHEAD = `WITH moved AS (
         UPDATE subscription_checkpoints SET position = $7, updated_at = now()
          WHERE name = $8 AND position < $9
          RETURNING 1),
       added AS (
         ${ADD_BUCKETS}
           WHERE EXISTS (SELECT 1 FROM moved)
         ${ON_BUCKET})
       SELECT count(*)::int AS moved FROM moved`;

  /**
   * The usual case, a batch that starts past the checkpoint, in one statement and one round trip:
   * the checkpoint moves only if it is still below the batch's first event (the UPDATE locks the
   * row, and under READ COMMITTED a writer that waited on it checks that condition again against
   * the committed row), and the sums are added only if it moved. A single statement commits or
   * fails whole, like the transaction below. False when the checkpoint row is missing or already
   * at or past the first event: some of the batch may be counted, which only the transaction
   * below sorts out.
   */
  async function addIfAhead(events: readonly RecordedEvent[], sums: readonly BucketSum[]): Promise<boolean> {
    const first = events[0]!;
    const last = events[events.length - 1]!;
    const { rows } = await pool.query<{ moved: number }>({
      // Named, so each connection parses and plans it once: a caught-up projection runs it for
      // every batch, some 65 times a second at 2,000 usage events/s.
      name: 'tally_consumption_add_if_ahead',
      text: ADD_IF_AHEAD,
      values: [...bucketColumns(sums), last.position.toString(), CONSUMPTION_PROJECTION, first.position.toString()],
    });
    return rows[0]?.moved === 1;
  }

  async function handle(events: readonly RecordedEvent[]): Promise<void | { readonly restart: string }> {
    const last = events[events.length - 1];
    if (last === undefined) return;
    const whole = await sumsOf(events);
    if (await addIfAhead(events, whole)) return;
    let restart: string | undefined;
    await inTransaction(pool, async (client) => {
      const created = await client.query('INSERT INTO subscription_checkpoints (name, position) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING RETURNING 1', [
        CONSUMPTION_PROJECTION,
      ]);
      if ((created.rowCount ?? 0) > 0) {
        // No row, though load() made one: the projection was reset under this process (migration
        // 029, a store switch). The events before this batch are not in the sums: start again from 0.
        restart = 'the consumption projection has no checkpoint (reset): counting from position 0';
        return;
      }
      // The row lock orders this transaction after any other writer's (a deposed holder's), and
      // the position it then reads says which of these events are already in the sums.
      const { rows } = await client.query<{ position: string }>('SELECT position FROM subscription_checkpoints WHERE name = $1 FOR UPDATE', [
        CONSUMPTION_PROJECTION,
      ]);
      const saved = BigInt(rows[0]!.position);
      if (saved < events[0]!.position) {
        // Below the batch, though the single statement found the row missing or at it: reset in
        // between (another process made the row again). Counting this batch would skip the events before it.
        restart = `the consumption projection's checkpoint went back to ${saved} (reset): counting from there`;
        return;
      }
      if (last.position <= saved) return;
      const sums = await sumsOf(events.filter((event) => event.position > saved));
      if (sums.length > 0) await client.query(`${ADD_BUCKETS}\n           ${ON_BUCKET}`, bucketColumns(sums));
      await client.query('UPDATE subscription_checkpoints SET position = $2, updated_at = now() WHERE name = $1', [
        CONSUMPTION_PROJECTION,
        last.position.toString(),
      ]);
    });
    return restart === undefined ? undefined : { restart };
  }

  return { checkpoints, handle };
}
