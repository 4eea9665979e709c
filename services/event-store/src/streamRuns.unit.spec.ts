import type { RecordedEvent } from './eventStore';
import { streamRuns } from './streamRuns';

const recorded = (streamId: string, revision: number): RecordedEvent => ({
  id: `${streamId}-${revision}`,
  streamId,
  revision: BigInt(revision),
  position: BigInt(revision + 1),
  type: 'Tested',
  data: {},
  metadata: {},
  recordedAt: new Date(0),
});

describe('streamRuns', () => {
  it('cuts a page into runs of one stream each, in page order', () => {
    const page = [recorded('a', 0), recorded('a', 1), recorded('b', 0), recorded('c', 4), recorded('c', 5), recorded('c', 6)];
    expect([...streamRuns(page)].map((run) => run.map((event) => event.id))).toEqual([['a-0', 'a-1'], ['b-0'], ['c-4', 'c-5', 'c-6']]);
  });

  it('yields nothing for an empty page', () => {
    expect([...streamRuns([])]).toEqual([]);
  });
});
