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
 */
export interface EventStoreDbModel {
  readonly client: EventStoreDbClient;
  failAppend: ((streamName: string) => boolean) | undefined;
  down: boolean;
  /** Every stored event, in $all order. */
  readonly log: readonly ModelEvent[];
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
}

interface IncomingEvent {
  readonly id: string;
  readonly type: string;
  readonly data: unknown;
  readonly metadata?: unknown;
}

const typedError = (type: string, message: string, extra: object = {}): Error => Object.assign(new Error(message), { type }, extra);

export function createEventStoreDbModel(): EventStoreDbModel {
  const log: ModelEvent[] = [];
  const streams = new Map<string, ModelEvent[]>();
  const live = new Set<{ emitter: EventEmitter; regex: RegExp | undefined }>();
  // Positions are byte offsets in the real log: increasing, with gaps.
  let nextPosition = 1_000n;

  const model: EventStoreDbModel = {
    failAppend: undefined,
    down: false,
    log,
    client: undefined as unknown as EventStoreDbClient,
  };

  const checkUp = (): void => {
    if (model.down) throw typedError('unavailable', '14 UNAVAILABLE: No connection established');
  };

  const resolved = (event: ModelEvent) => ({
    event: {
      streamId: event.streamId,
      id: event.id,
      type: event.type,
      revision: event.revision,
      isJson: true,
      data: JSON.parse(event.data) as unknown,
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
      const events = Array.isArray(input) ? input : [input];
      const stream = streams.get(streamName) ?? [];
      const current = BigInt(stream.length) - 1n;
      const expected = options.expectedRevision ?? 'any';
      const wrong = () =>
        typedError('wrong-expected-version', `WrongExpectedVersion: ${streamName} expected ${String(expected)}, current ${current < 0n ? 'no_stream' : current}`, {
          streamName,
          expectedVersion: expected,
          actualVersion: current < 0n ? 'no_stream' : current,
        });
      if (expected === 'no_stream' || typeof expected === 'bigint') {
        const after = expected === 'no_stream' ? -1n : expected;
        if (after > current) throw wrong();
        if (after < current) {
          // Idempotent only when exactly these events follow that revision.
          const there = stream.slice(Number(after + 1n), Number(after + 1n) + events.length);
          if (there.length === events.length && there.every((stored, i) => stored.id === events[i]!.id.toLowerCase())) {
            const last = there[there.length - 1]!;
            return { success: true, nextExpectedRevision: last.revision, position: { commit: last.position, prepare: last.position } };
          }
          throw wrong();
        }
      } else if (expected === 'stream_exists' && current < 0n) {
        throw wrong();
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
          const stream = streams.get(streamName);
          if (stream === undefined) throw typedError('stream-not-found', `${streamName} not found`);
          const max = Number(options.maxCount ?? Number.MAX_SAFE_INTEGER);
          // Not a read the server is known to take: the adapter must never ask for it.
          if (max <= 0) throw typedError('invalid-argument', `maxCount must be positive; got ${max}`);
          const backwards = options.direction === 'backwards';
          const from = options.fromRevision ?? (backwards ? 'end' : 'start');
          let picked: ModelEvent[];
          if (backwards) {
            const top = from === 'end' ? stream.length - 1 : from === 'start' ? 0 : Math.min(Number(from), stream.length - 1);
            picked = stream.slice(0, top + 1).reverse();
          } else {
            picked = from === 'start' ? stream : from === 'end' ? [] : stream.slice(Number(from));
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
