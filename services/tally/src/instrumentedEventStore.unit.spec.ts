import type { Histogram } from '@tally/metrics';
import type { AppendManyOptions, AppendRequest, EventStore } from '@tally/event-store';
import { instrumentedEventStore } from './instrumentedEventStore';

describe('instrumentedEventStore', () => {
  it('passes an append its markers: they are part of its transaction', async () => {
    const seen: [readonly AppendRequest[], AppendManyOptions | undefined][] = [];
    const store = { appendMany: async (requests: readonly AppendRequest[], options?: AppendManyOptions) => (seen.push([requests, options]), []) } as unknown as EventStore;
    const observed: string[] = [];
    const histogram = {
      startTimer: (labels: { operation: string }) => () => observed.push(labels.operation),
      observe: (labels: { operation: string }) => observed.push(labels.operation),
    } as unknown as Histogram<'operation'>;
    await instrumentedEventStore(store, histogram).appendMany([], { markers: ['alice:u1'] });
    expect(seen).toEqual([[[], { markers: ['alice:u1'] }]]);
    expect(observed).toEqual(['append_many']);
  });
});
