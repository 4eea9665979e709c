import { setTimeout as delay } from 'node:timers/promises';
import type { Admin } from 'kafkajs';
import { formatCount, progress } from './progress';

export interface CommitWatchOptions {
  readonly admin: Admin;
  readonly groupId: string;
  readonly topic: string;
  /** A consumer that dies is not waited for until the deadline: its exit fails the wait at once. */
  readonly failed?: () => string | undefined;
  readonly timeoutMs: number;
  readonly intervalMs?: number;
  /** Called after every poll with the offsets committed so far and the total. */
  readonly onProgress?: (done: bigint, total: bigint) => void;
}

export interface GroupAtEnd {
  /** Wall-clock time (epoch ms) of the poll that saw every partition committed to its end. */
  readonly endedAt: number;
  /**
   * Polls that failed, e.g. while someone else's fault test had stopped the shared broker: the
   * measured time then includes that outage, and the report says so.
   */
  readonly failedPolls: number;
}

/**
 * Polls the group's committed offsets until every partition's reaches the topic's end. A commit
 * is made only after the batch's appends are durable, so this is when the last usage event was
 * metered for good. The time is late by at most one interval plus one round trip.
 */
export async function waitForGroupAtEnd(options: CommitWatchOptions): Promise<GroupAtEnd> {
  const { admin, groupId, topic, timeoutMs } = options;
  const intervalMs = options.intervalMs ?? 200;
  const ends = new Map((await admin.fetchTopicOffsets(topic)).map((entry) => [entry.partition, BigInt(entry.high)]));
  const total = [...ends.values()].reduce((sum, end) => sum + end, 0n);
  const deadline = Date.now() + timeoutMs;
  let lastReport = Date.now();
  let failedPolls = 0;
  let done = 0n;
  for (;;) {
    try {
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      done = 0n;
      for (const { partition, offset } of committed?.partitions ?? []) {
        const end = ends.get(partition) ?? 0n;
        // -1: nothing committed yet on that partition.
        if (offset !== '-1') done += BigInt(offset) < end ? BigInt(offset) : end;
      }
      if (done === total) return { endedAt: Date.now(), failedPolls };
      options.onProgress?.(done, total);
    } catch (error) {
      failedPolls += 1;
      progress(`${groupId}: could not read its committed offsets (${String(error)}); still waiting`);
    }
    const failure = options.failed?.();
    if (failure !== undefined) throw new Error(`${groupId} stopped before the end of ${topic}: ${failure}`);
    if (Date.now() > deadline) throw new Error(`${groupId} committed ${done} of ${total} offsets of ${topic} within ${timeoutMs} ms`);
    if (Date.now() - lastReport >= 10_000) {
      lastReport = Date.now();
      progress(`${groupId}: ${formatCount(Number(done))} of ${formatCount(Number(total))} committed`);
    }
    await delay(intervalMs);
  }
}
