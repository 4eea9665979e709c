/** A stream and how many events it holds. */
export interface StreamLength {
  readonly streamId: string;
  readonly events: bigint;
}

/** Streams read together in one query, or one stream too long for a page, read in pages of its own. */
type StreamReadGroup =
  | { readonly kind: 'together'; readonly streamIds: readonly string[] }
  | { readonly kind: 'paged'; readonly streamId: string };

/**
 * Splits streams into reads of at most `maxPageEvents` events each, so that folding many streams
 * never holds more than about a page in memory however long they grow. Streams keep their given
 * order; empty ones are left out (there is nothing to read).
 */
export function groupStreamsByEvents(streams: readonly StreamLength[], maxPageEvents: number): StreamReadGroup[] {
  if (!Number.isSafeInteger(maxPageEvents) || maxPageEvents < 1) throw new RangeError(`maxPageEvents must be a positive integer; got ${maxPageEvents}`);
  const budget = BigInt(maxPageEvents);
  const groups: StreamReadGroup[] = [];
  let together: string[] = [];
  let events = 0n;
  const flush = (): void => {
    if (together.length > 0) groups.push({ kind: 'together', streamIds: together });
    together = [];
    events = 0n;
  };
  for (const stream of streams) {
    if (stream.events <= 0n) continue;
    if (stream.events > budget) {
      flush();
      groups.push({ kind: 'paged', streamId: stream.streamId });
      continue;
    }
    if (events + stream.events > budget) flush();
    together.push(stream.streamId);
    events += stream.events;
  }
  flush();
  return groups;
}
