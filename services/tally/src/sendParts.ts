/** One event of `tally send` with the bytes that go on the topic for it. */
export interface EncodedEvent<Event> {
  readonly event: Event;
  readonly value: Buffer;
}

/**
 * `count` events, made (eventAt) and encoded a part at a time as the caller pulls them: memory
 * holds one part (and the next part's first event), not all of a large `tally send -n`. A part
 * holds as many events as fit in `partBytes` as `sizeOf` measures them (the bytes a send takes
 * for one, as sendInParts measures a part), so each part is one send; an event larger than that
 * goes alone. Never an empty part.
 */
export async function* eventsInParts<Event>(options: {
  readonly count: number;
  readonly partBytes: number;
  readonly sizeOf: (value: Buffer) => number;
  readonly eventAt: (index: number) => Event;
  readonly encode: (event: Event) => Promise<Buffer>;
}): AsyncGenerator<Array<EncodedEvent<Event>>, void, undefined> {
  let part: Array<EncodedEvent<Event>> = [];
  let bytes = 0;
  for (let index = 0; index < options.count; index += 1) {
    const event = options.eventAt(index);
    const value = await options.encode(event);
    const size = options.sizeOf(value);
    if (part.length > 0 && bytes + size > options.partBytes) {
      yield part;
      part = [];
      bytes = 0;
    }
    part.push({ event, value });
    bytes += size;
  }
  if (part.length > 0) yield part;
}
