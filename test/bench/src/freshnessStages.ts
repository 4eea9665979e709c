import { summariseLatencies, type LatencySummary } from './percentiles';

/** One tracked usage event of the freshness measurement, with what the bench learned of its way. */
export interface TrackedEvent {
  /** Epoch ms: the usage timestamp, taken just before the send. */
  readonly publishedAt: number;
  readonly partition: number;
  readonly offset: bigint;
  /** Epoch ms when the bench's plain kafkajs consumer (the floor) received it. */
  readonly deliveredAt?: number;
  /** Its ledger event's global position and recorded_at (clock_timestamp() as its append began), epoch ms. */
  readonly position?: bigint;
  readonly recordedAt?: number;
  /** Epoch ms when the bench's poll saw the snapshot reflect it. */
  readonly seenAt?: number;
}

/** A chunk the consumer metered, from its "usage batch metered" debug line. */
export interface ConsumerChunk {
  readonly partition: number;
  readonly firstOffset: bigint;
  readonly lastOffset: bigint;
  /** Epoch ms: the chunk began (its messages in hand), its appends returned, its offsets were handed to the committer (which commits them off the fetch cycle). */
  readonly startedAt: number;
  readonly meteredAt: number;
  readonly committedAt: number;
}

/** A batch the live projector wrote, from its "batch projected" debug line. */
export interface ProjectedBatch {
  readonly first: bigint;
  readonly last: bigint;
  /** Epoch ms: the subscription handed the batch over, and its snapshots were written. */
  readonly receivedAt: number;
  /** Folded (the snapshots of balances not in its cache read from Redis first). */
  readonly preparedAt: number;
  readonly writtenAt: number;
}

function parseLines(lines: readonly string[], message: string): Record<string, unknown>[] {
  const found: Record<string, unknown>[] = [];
  for (const line of lines) {
    if (!line.includes(`"msg":"${message}"`)) continue;
    try {
      found.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // Not a pino line: skip it.
    }
  }
  return found;
}

export function consumerChunks(lines: readonly string[]): ConsumerChunk[] {
  return parseLines(lines, 'usage batch metered').map((line) => {
    const time = Number(line.time);
    const durationMs = Number(line.durationMs);
    const startedAt = time - durationMs;
    return {
      partition: Number(line.partition),
      firstOffset: BigInt(String(line.firstOffset)),
      lastOffset: BigInt(String(line.lastOffset)),
      startedAt,
      meteredAt: startedAt + Number(line.meteredMs),
      committedAt: time,
    };
  });
}

export function projectedBatches(lines: readonly string[]): ProjectedBatch[] {
  return parseLines(lines, 'batch projected').map((line) => {
    const time = Number(line.time);
    const receivedAt = time - Number(line.durationMs);
    return { first: BigInt(String(line.first)), last: BigInt(String(line.last)), receivedAt, preparedAt: receivedAt + Number(line.preparedMs), writtenAt: time };
  });
}

/** The stages of an event's way from the publisher to the bench seeing its snapshot, in order. */
export const STAGES = [
  ['kafka floor', 'publish → the bench\'s plain consumer receives it (for reference; not a stage of Tally\'s way)'],
  ['to consumer', 'publish → the Tally consumer\'s chunk holding it begins (Kafka, and the wait for the consumer\'s next fetch)'],
  ['meter', 'chunk begins → its append begins in PostgreSQL (decode, price, markers, decide)'],
  ['append', 'append begins → the consumer has its reply'],
  ['projector pickup', 'append returned → the projector is handed the batch holding it (NOTIFY, wait for the projector\'s round in progress, readAll)'],
  ['projector fold', 'batch handed → folded (reading from Redis the snapshots its cache lacks)'],
  ['projector write', 'folded → its snapshots written (one Redis script)'],
  ['bench poll', 'written → the bench\'s poll sees it (up to its interval plus a round trip)'],
  ['offset hand-over', 'append returned → offsets handed to the committer, which commits them to Kafka off the fetch cycle (its own time is in the "offsets committed" debug lines)'],
  ['total', 'publish → seen'],
  ['floor + from chunk', 'Kafka\'s floor, then chunk begins → seen: the total were the consumer\'s chunk to begin as its message reached the floor consumer, nothing after it faster (a bound on what any fetch cycle could give)'],
] as const;

export type StageName = (typeof STAGES)[number][0];

export interface StageBreakdown {
  /** Tracked events whose every timestamp was found. */
  readonly events: number;
  readonly stages: Readonly<Partial<Record<StageName, LatencySummary>>>;
}

/** Finds, for each event, the chunk and batch that carried it, and summarises each stage's time. */
export function freshnessStages(events: readonly TrackedEvent[], chunks: readonly ConsumerChunk[], batches: readonly ProjectedBatch[]): StageBreakdown {
  const byPartition = new Map<number, ConsumerChunk[]>();
  for (const chunk of chunks) {
    const list = byPartition.get(chunk.partition) ?? [];
    list.push(chunk);
    byPartition.set(chunk.partition, list);
  }
  const sortedBatches = [...batches].sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  const values = new Map<StageName, number[]>(STAGES.map(([name]) => [name, []]));
  const add = (name: StageName, value: number) => values.get(name)!.push(value);
  let complete = 0;
  for (const event of events) {
    if (event.deliveredAt === undefined || event.position === undefined || event.recordedAt === undefined || event.seenAt === undefined) continue;
    // The last chunk holding the offset: a chunk split to isolate a failure logs its halves again.
    const chunk = (byPartition.get(event.partition) ?? []).filter((candidate) => candidate.firstOffset <= event.offset && event.offset <= candidate.lastOffset).pop();
    const position = event.position;
    const batch = findBatch(sortedBatches, position);
    if (chunk === undefined || batch === undefined) continue;
    complete += 1;
    add('kafka floor', event.deliveredAt - event.publishedAt);
    add('to consumer', chunk.startedAt - event.publishedAt);
    add('meter', event.recordedAt - chunk.startedAt);
    add('append', chunk.meteredAt - event.recordedAt);
    add('projector pickup', batch.receivedAt - chunk.meteredAt);
    add('projector fold', batch.preparedAt - batch.receivedAt);
    add('projector write', batch.writtenAt - batch.preparedAt);
    add('bench poll', event.seenAt - batch.writtenAt);
    add('offset hand-over', chunk.committedAt - chunk.meteredAt);
    add('total', event.seenAt - event.publishedAt);
    // Under the same load: what an event's way would take with no wait for the consumer's next fetch.
    add('floor + from chunk', event.deliveredAt - event.publishedAt + (event.seenAt - chunk.startedAt));
  }
  const stages: Partial<Record<StageName, LatencySummary>> = {};
  if (complete > 0) for (const [name, list] of values) stages[name] = summariseLatencies(list);
  return { events: complete, stages };
}

/** The batch whose positions cover `position`: the last one to begin at or below it. */
function findBatch(sorted: readonly ProjectedBatch[], position: bigint): ProjectedBatch | undefined {
  let low = 0;
  let high = sorted.length - 1;
  let found: ProjectedBatch | undefined;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const batch = sorted[middle]!;
    if (batch.first <= position) {
      if (position <= batch.last) found = batch;
      low = middle + 1;
    } else {
      high = middle - 1;
    }
  }
  return found;
}

export function formatStages(breakdown: StageBreakdown): string[] {
  const lines = [`freshness stages over ${breakdown.events} tracked events (ms; p50 / p95 / p99 / max):`];
  for (const [name, what] of STAGES) {
    const summary = breakdown.stages[name];
    if (summary === undefined) continue;
    lines.push(`  ${name.padEnd(18)} ${[summary.p50, summary.p95, summary.p99, summary.max].map((value) => value.toFixed(1).padStart(7)).join(' ')}   ${what}`);
  }
  const floor = breakdown.stages['kafka floor'];
  const bound = breakdown.stages['floor + from chunk'];
  if (floor !== undefined && bound !== undefined) {
    lines.push(`with no wait for the consumer's next fetch Tally would still add +${(bound.p99 - floor.p99).toFixed(1)} ms at p99 over the floor (+${(bound.p50 - floor.p50).toFixed(1)} at p50)`);
  }
  return lines;
}
