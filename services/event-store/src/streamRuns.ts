/**
 * The runs of consecutive events of one stream in a page of readStreamsPaged, in page order: what
 * a fold applies to one stream's state at a time.
 */
export function* streamRuns<Event extends { readonly streamId: string }>(page: readonly Event[]): Generator<readonly Event[]> {
  let start = 0;
  while (start < page.length) {
    const streamId = page[start]!.streamId;
    let end = start + 1;
    while (end < page.length && page[end]!.streamId === streamId) end += 1;
    yield page.slice(start, end);
    start = end;
  }
}
