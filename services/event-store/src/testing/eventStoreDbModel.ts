import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { setImmediate as yieldToOthers } from 'node:timers/promises';
import type { EventStoreDbClient } from '../createEventStoreDbEventStore';

/**
 * An in-memory model of the EventStoreDB calls the adapter makes, with the server's documented
 * semantics: appends atomic per stream, expected revisions (`any`, `no_stream`, `stream_exists`,
 * a revision), idempotent repeats of the events at a known revision, WrongExpectedVersion
 * otherwise, per-event commit (= prepare) positions with gaps, stream-not-found on reads, $all
 * reads from a position in either direction, live subscriptions. It exercises the adapter's own
 * logic (journal, settle, checks, apply) where no server can run; it is not EventStoreDB, and a
 * pass here says nothing of the real server's behaviour beyond what is modelled.
 *
 * Faults: `failAppend` throws before an append of a matching stream is stored (a crash or a
 * lost connection at that point); `down` makes every call fail as an unreachable server does.
 *
 * Operator actions, as the server documents them (no server runs here to confirm them):
 * `tombstone` is a hard delete (a `$streamDeleted` record, not JSON, in $all; the stream's reads
 * and appends fail with stream-deleted for ever); `softDelete` hides the stream (reads say
 * stream-not-found) until an append with `no_stream` or `any` recreates it, its revisions going on
 * from the old last one and reads starting there (the server's own test
 * soft_deleted_stream_allows_recreation_when_expver_no_stream).
 */
export interface EventStoreDbModel {
  readonly client: EventStoreDbClient;
  failAppend: ((streamName: string) => boolean) | undefined;
  down: boolean;
  /**
   * false: as the client with `throwOnAppendFailure=false`, a wrong expected version resolves
   * `{ success: false }` instead of throwing.
   */
  throwOnAppendFailure: boolean;
  /** Every stored event, in $all order. */
  readonly log: readonly ModelEvent[];
  tombstone(streamName: string): void;
  softDelete(streamName: string): void;
}

interface ModelEvent {
  readonly streamId: string;
  readonly id: string;
  readonly type: string;
  readonly revision: bigint;
  readonly position: bigint;
  readonly data: string;
  readonly metadata: string;
  readonly created: Date;
  /** false: a binary record (a tombstone), its data empty. */
  readonly isJson?: boolean;
}

interface IncomingEvent {
  readonly id: string;
  readonly type: string;
  readonly data: unknown;
  readonly metadata?: unknown;
}

const typedError = (type: string, message: string, extra: object = {}): Error => Object.assign(new Error(message), { type }, extra);
/** A failed append: thrown, or (throwOnAppendFailure=false) the client's `{ success: false }` result. */
const fail = <T>(outcome: Error | T): T => {
  if (outcome instanceof Error) throw outcome;
  return outcome;
};

export function createEventStoreDbModel(): EventStoreDbModel {
  const log: ModelEvent[] = [];
  const streams = new Map<string, ModelEvent[]>();
  const live = new Set<{ emitter: EventEmitter; regex: RegExp | undefined }>();
  const tombstoned = new Set<string>();
  /** Soft-deleted streams, hidden until recreated. */
  const hidden = new Set<string>();
  /** Per recreated stream, the first revision its reads show (the server's truncate-before). */
  const truncateBefore = new Map<string, bigint>();
  // Positions are byte offsets in the real log: increasing, with gaps.
  let nextPosition = 1_000n;

  const model: EventStoreDbModel = {
    failAppend: undefined,
    down: false,
    throwOnAppendFailure: true,
    log,
    client: undefined as unknown as EventStoreDbClient,
    tombstone(streamName) {
      tombstoned.add(streamName);
      const position = nextPosition;
      nextPosition += 64n;
      log.push({ streamId: streamName, id: randomUUID(), type: '$streamDeleted', revision: 2n ** 63n - 1n, position, data: '', metadata: '', created: new Date(), isJson: false });
    },
    softDelete(streamName) {
      hidden.add(streamName);
      truncateBefore.set(streamName, BigInt(streams.get(streamName)?.length ?? 0));
    },
  };
  const deleted = (streamName: string): Error => typedError('stream-deleted', `${streamName} is deleted`, { streamName });

  const checkUp = (): void => {
    if (model.down) throw typedError('unavailable', '14 UNAVAILABLE: No connection established');
  };

  const resolved = (event: ModelEvent) => ({
    event: {
      streamId: event.streamId,
      id: event.id,
      type: event.type,
      revision: event.revision,
      isJson: event.isJson ?? true,
      data: event.isJson === false ? new Uint8Array() : (JSON.parse(event.data) as unknown),
      metadata: event.metadata === '' ? undefined : (JSON.parse(event.metadata) as unknown),
      created: event.created,
      position: { commit: event.position, prepare: event.position },
    },
  });

  /** A readable of these events (computed when first read), with the client's cancel(). */
  const streaming = (produce: () => ModelEvent[]): Readable & { cancel(): Promise<void> } => {
    const readable = Readable.from(
      (async function* () {
        await yieldToOthers();
        checkUp();
        for (const event of produce()) yield resolved(event);
      })(),
    ) as Readable & { cancel(): Promise<void> };
    readable.cancel = async () => {
      readable.destroy();
    };
    return readable;
  };

  const client = {
    async appendToStream(streamName: string, input: IncomingEvent | IncomingEvent[], options: { expectedRevision?: 'any' | 'no_stream' | 'stream_exists' | bigint } = {}) {
      await yieldToOthers();
      checkUp();
      if (model.failAppend?.(streamName)) throw typedError('unavailable', `14 UNAVAILABLE: connection lost appending to ${streamName}`);
      if (tombstoned.has(streamName)) throw deleted(streamName);
      const events = Array.isArray(input) ? input : [input];
      const stream = streams.get(streamName) ?? [];
      const recreate = hidden.has(streamName);
      // A soft-deleted stream takes no_stream or any, and goes on from its old last revision.
      const expected = recreate && (options.expectedRevision ?? 'any') === 'no_stream' ? 'any' : (options.expectedRevision ?? 'any');
      const current = BigInt(stream.length) - 1n;
      if (recreate && expected === 'any') hidden.delete(streamName);
      const wrong = () =>
        model.throwOnAppendFailure === false ? { success: false, nextExpectedRevision: current, position: undefined } : typedError('wrong-expected-version', `WrongExpectedVersion: ${streamName} expected ${String(expected)}, current ${current < 0n ? 'no_stream' : current}`, {
          streamName,
          expectedVersion: expected,
          actualVersion: current < 0n ? 'no_stream' : current,
        });
      if (expected === 'no_stream' || typeof expected === 'bigint') {
        const after = expected === 'no_stream' ? -1n : expected;
        if (after > current) return fail(wrong());
        if (after < current) {
          // Idempotent only when exactly these events follow that revision.
          const there = stream.slice(Number(after + 1n), Number(after + 1n) + events.length);
          if (there.length === events.length && there.every((stored, i) => stored.id === events[i]!.id.toLowerCase())) {
            const last = there[there.length - 1]!;
            return { success: true, nextExpectedRevision: last.revision, position: { commit: last.position, prepare: last.position } };
          }
          return fail(wrong());
        }
      } else if (expected === 'stream_exists' && current < 0n) {
        return fail(wrong());
      }
      const created = new Date();
      const written = events.map((event, i): ModelEvent => {
        const data = JSON.stringify(event.data);
        const metadata = event.metadata === undefined ? '' : JSON.stringify(event.metadata);
        const position = nextPosition;
        nextPosition += 64n + BigInt(Buffer.byteLength(data) + Buffer.byteLength(metadata));
        return { streamId: streamName, id: event.id.toLowerCase(), type: event.type, revision: current + 1n + BigInt(i), position, data, metadata, created };
      });
      streams.set(streamName, [...stream, ...written]);
      log.push(...written);
      for (const subscriber of live) {
        for (const event of written) if (subscriber.regex === undefined || subscriber.regex.test(event.streamId)) subscriber.emitter.emit('data', resolved(event));
      }
      const last = written[written.length - 1]!;
      return { success: true, nextExpectedRevision: last.revision, position: { commit: last.position, prepare: last.position } };
    },

    readStream(streamName: string, options: { fromRevision?: 'start' | 'end' | bigint; direction?: 'forwards' | 'backwards'; maxCount?: number | bigint } = {}) {
      const readable = Readable.from(
        (async function* () {
          await yieldToOthers();
          checkUp();
          if (tombstoned.has(streamName)) throw deleted(streamName);
          const all = streams.get(streamName);
          if (all === undefined || hidden.has(streamName)) throw typedError('stream-not-found', `${streamName} not found`);
          const cut = truncateBefore.get(streamName) ?? 0n;
          const stream = all.filter((event) => event.revision >= cut);
          const max = Number(options.maxCount ?? Number.MAX_SAFE_INTEGER);
          // Not a read the server is known to take: the adapter must never ask for it.
          if (max <= 0) throw typedError('invalid-argument', `maxCount must be positive; got ${max}`);
          const backwards = options.direction === 'backwards';
          const from = options.fromRevision ?? (backwards ? 'end' : 'start');
          let picked: ModelEvent[];
          if (backwards) {
            picked = stream.filter((event) => from === 'end' || (from === 'start' ? event.revision <= cut : event.revision <= from)).reverse();
          } else {
            picked = from === 'start' ? stream : from === 'end' ? [] : stream.filter((event) => event.revision >= from);
          }
          for (const event of picked.slice(0, max)) yield resolved(event);
        })(),
      ) as Readable & { cancel(): Promise<void> };
      readable.cancel = async () => {
        readable.destroy();
      };
      return readable;
    },

    readAll(options: { fromPosition?: 'start' | 'end' | { commit: bigint; prepare: bigint }; direction?: 'forwards' | 'backwards' } = {}) {
      const backwards = options.direction === 'backwards';
      const from = options.fromPosition ?? (backwards ? 'end' : 'start');
      return streaming(() => {
        if (backwards) {
          const upTo = from === 'end' ? undefined : from === 'start' ? -1n : from.commit;
          return log.filter((event) => upTo === undefined || event.position < upTo).reverse();
        }
        const start = from === 'start' ? -1n : from === 'end' ? nextPosition : from.commit;
        return log.filter((event) => event.position >= start);
      });
    },

    subscribeToAll(options: { filter?: { regex?: string } } = {}) {
      const emitter = new EventEmitter();
      const entry = { emitter, regex: options.filter?.regex === undefined ? undefined : new RegExp(options.filter.regex) };
      live.add(entry);
      return Object.assign(emitter, {
        async unsubscribe() {
          live.delete(entry);
        },
      });
    },

    async dispose() {
      live.clear();
    },
  };
  (model as { client: EventStoreDbClient }).client = client as unknown as EventStoreDbClient;
  return model;
}
