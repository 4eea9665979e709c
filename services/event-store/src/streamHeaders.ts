import { LruCache } from '@tally/domain';
import type { JsonObject, JsonValue } from './eventStore';

/**
 * Stream headers (migration 017) the PostgreSQL store was given back by append_events (022), so
 * that it can reduce an event's metadata against its stream's header itself, as 017 stores it:
 * `meta`, the keys whose values differ from the header's, and `meta_absent`, bit i set when the
 * header's i-th key (in jsonb's order, as the function returned the keys) is missing.
 *
 * A header never changes once its stream exists, and a stream's number names one stream for
 * ever, so a kept header stays true; append_events checks the number against the stream's own
 * anyway (TY005). Bounded: past the limit the least recently used is forgotten, or a new header
 * asked for no more often is not kept, and that stream's next append is reduced in SQL again (and
 * returns its header again).
 */
export interface StreamHeader {
  readonly streamNo: string;
  /** The header's keys in jsonb's order: the mask's bit order. */
  readonly keys: readonly string[];
  readonly header: JsonObject;
}

export class StreamHeaders {
  // The one bounded cache (least recently used leaves first, admitted by frequency); undefined when none is kept.
  private readonly headers: LruCache<string, StreamHeader> | undefined;

  constructor(maxHeaders: number) {
    // Admitted by frequency once full (see LruCache): streams appended to in turn, more than it
    // holds, would otherwise replace every header before its stream's next append.
    this.headers = maxHeaders > 0 ? new LruCache({ maxEntries: maxHeaders, admission: 'frequency' }) : undefined;
  }

  get(streamId: string): StreamHeader | undefined {
    return this.headers?.get(streamId);
  }

  set(streamId: string, header: StreamHeader): void {
    this.headers?.set(streamId, header);
  }

  delete(streamId: string): void {
    this.headers?.delete(streamId);
  }

  /**
   * Whether a header for this stream, not kept yet, would be kept if given now: what an append
   * asks append_events for (024), so that headers the admission would drop are not built, sent
   * and parsed. Asked after `get`, which counted this append for admission.
   */
  wants(streamId: string): boolean {
    return this.headers !== undefined && this.headers.peek(streamId) === undefined && this.headers.wouldKeep(streamId);
  }
}

/**
 * Equal as jsonb compares them, or not known to be: a value kept in `meta` although equal to the
 * header's decodes the same (meta's keys win), so only "equal" must be certain. Numbers are
 * equal only as safe integers: the header's came through JSON.parse, which may have rounded a
 * number written with more digits than a double holds.
 */
function surelyEqual(a: JsonValue | undefined, b: JsonValue): boolean {
  if (a === b) return typeof a !== 'number' || Number.isSafeInteger(a);
  return false;
}

/** An event's metadata reduced against its stream's header: 017's es_meta_diff and es_meta_absent. */
export function reduceMetadata(metadata: JsonObject, { keys, header }: StreamHeader): { meta: JsonObject | null; absent: number | null } {
  let absent = 0;
  for (let i = 0; i < keys.length; i += 1) {
    const key = keys[i]!;
    if (!Object.hasOwn(metadata, key) || metadata[key] === undefined) absent |= 1 << i;
  }
  let meta: JsonObject | null = null;
  for (const key of Object.keys(metadata)) {
    const value = metadata[key];
    if (value === undefined) continue; // as JSON.stringify drops it
    if (Object.hasOwn(header, key) && surelyEqual(header[key], value)) continue;
    meta ??= {};
    // An own property even for "__proto__", as JSON.parse makes it.
    if (key === '__proto__') Object.defineProperty(meta, key, { value, enumerable: true, writable: true, configurable: true });
    else meta[key] = value;
  }
  return { meta, absent: absent === 0 ? null : absent };
}
