/** One event of `tally send` with the bytes that go on the topic for it. */
export interface EncodedEvent<Event> {
  readonly event: Event;
  readonly value: Buffer;
}

/**
 * `count` events, made (eventAt) and encoded a part at a time as the caller pulls them: memory
 * holds one part, not all of a large `tally send -n`. A part ends with the event that brings its
 * values to `partBytes` (so it holds at least one, and at most one event more than fits).
 */
export async function* eventsInParts<Event>(options: {
  readonly count: number;
  readonly partBytes: number;
  readonly eventAt: (index: number) => Event;
  readonly encode: (event: Event) => Promise<Buffer>;
}): AsyncGenerator<Array<EncodedEvent<Event>>, void, undefined> {
  let part: Array<EncodedEvent<Event>> = [];
  let bytes = 0;
  for (let index = 0; index < options.count; index += 1) {
    const event = options.eventAt(index);
    const value = await options.encode(event);
    part.push({ event, value });
    bytes += value.length;
    if (bytes >= options.partBytes) {
      yield part;
      part = [];
      bytes = 0;
    }
  }
  if (part.length > 0) yield part;
}
