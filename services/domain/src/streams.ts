const BALANCE_STREAM_PREFIX = 'creditBalance-';

/** The event stream of one credit balance. EventStoreDB-style `category-id` naming. */
export function balanceStreamId(balanceId: string): string {
  return `${BALANCE_STREAM_PREFIX}${balanceId}`;
}

export function balanceIdOfStream(streamId: string): string | undefined {
  return streamId.startsWith(BALANCE_STREAM_PREFIX) ? streamId.slice(BALANCE_STREAM_PREFIX.length) : undefined;
}
