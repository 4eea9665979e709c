import pino from 'pino';
import { waitFor } from '@tally/test-support';
import { createOffsetCommitter, type CommitOffsets } from './offsetCommitter';

type Sent = Record<number, string>;

/** A commit function that records what each call sent and finishes only when released. */
function recordingCommit() {
  const sent: Sent[] = [];
  const releases: Array<(error?: Error) => void> = [];
  const commit: CommitOffsets = (offsets) => {
    sent.push(Object.fromEntries(offsets.topics[0]!.partitions.map(({ partition, offset }) => [partition, offset])));
    return new Promise<void>((resolve, reject) => releases.push((error) => (error ? reject(error) : resolve())));
  };
  const release = (error?: Error) => releases.shift()!(error);
  return { sent, commit, release, inFlight: () => releases.length };
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
const committerFor = (attempts?: number) => createOffsetCommitter({ topic: 'usage', logger: pino({ level: 'silent' }), retryDelays: { initialDelayMs: 0, maxDelayMs: 0 }, attempts });

describe('createOffsetCommitter', () => {
  it('returns at once while open, and commits the latest offset of every partition together, one commit at a time', async () => {
    const { sent, commit, release, inFlight } = recordingCommit();
    const committer = committerFor();
    await committer.done(0, 10n, commit);
    expect(sent).toEqual([{ 0: '10' }]);
    // Handed over while the first commit is in flight: merged, the latest offset per partition.
    await committer.done(1, 5n, commit);
    await committer.done(0, 20n, commit);
    await committer.done(1, 7n, commit);
    expect(inFlight()).toBe(1);
    release();
    await settle();
    expect(sent).toEqual([{ 0: '10' }, { 0: '20', 1: '7' }]);
    const drained = committer.drain();
    release();
    await drained;
    expect(inFlight()).toBe(0);
  });

  it('never moves a partition back: an older offset handed over late is merged away', async () => {
    const { sent, commit, release } = recordingCommit();
    const committer = committerFor();
    await committer.done(3, 40n, commit);
    await committer.done(3, 50n, commit);
    await committer.done(3, 45n, commit);
    release();
    await settle();
    release();
    await committer.drain();
    expect(sent).toEqual([{ 3: '40' }, { 3: '50' }]);
  });

  it('retries a transient failure with the newest offsets, and drops a deterministic one (a rebalance)', async () => {
    const { sent, commit, release } = recordingCommit();
    const committer = committerFor(3);
    await committer.done(0, 1n, commit);
    await committer.done(0, 2n, commit);
    release(Object.assign(new Error('request timed out'), { retriable: true }));
    // The retry's backoff is a timer (0 ms here): wait for its attempt, with a deadline.
    await waitFor(() => sent.length >= 2, { description: 'the retried commit', timeoutMs: 2000, intervalMs: 1 });
    expect(sent).toEqual([{ 0: '1' }, { 0: '2' }]);
    release(Object.assign(new Error('The coordinator is not aware of this member'), { retriable: false }));
    await committer.drain();
    expect(sent).toHaveLength(2);
    // A later hand-over commits again.
    await committer.done(0, 3n, commit);
    release();
    await committer.drain();
    expect(sent.at(-1)).toEqual({ 0: '3' });
  });

  it('forgets what was not sent when the group rebalances', async () => {
    const { sent, commit, release } = recordingCommit();
    const committer = committerFor();
    await committer.done(0, 1n, commit);
    await committer.done(1, 9n, commit);
    committer.forget();
    release();
    await committer.drain();
    expect(sent).toEqual([{ 0: '1' }]);
  });

  it('never retries a failed commit after a rebalance: those offsets are the old assignment\'s, maybe behind its new owner\'s', async () => {
    const { sent, commit, release } = recordingCommit();
    // A backoff long enough for the rebalance to land in it.
    const committer = createOffsetCommitter({ topic: 'usage', logger: pino({ level: 'silent' }), retryDelays: { initialDelayMs: 200, maxDelayMs: 200 } });
    await committer.done(3, 40n, commit);
    release(Object.assign(new Error('request timed out'), { retriable: true }));
    await settle();
    // The group rebalanced meanwhile (partition 3 went to another member), and this member met partition 0 since.
    committer.forget();
    await committer.done(0, 5n, commit);
    await waitFor(() => sent.length >= 2, { description: 'the next commit', timeoutMs: 2000, intervalMs: 1 });
    release();
    await committer.drain();
    expect(sent).toEqual([{ 3: '40' }, { 0: '5' }]);
  });

  it('once closed, commits what was pending and then commits inline, throwing the commit error to the chunk', async () => {
    const { sent, commit, release } = recordingCommit();
    const committer = committerFor();
    await committer.done(0, 1n, commit);
    await committer.done(1, 2n, commit);
    const closed = committer.close();
    release();
    await settle();
    release();
    await closed;
    expect(sent).toEqual([{ 0: '1' }, { 1: '2' }]);

    let returned = false;
    const inline = committer.done(2, 3n, commit).then(() => (returned = true));
    await settle();
    expect(returned).toBe(false);
    release();
    await inline;
    expect(sent.at(-1)).toEqual({ 2: '3' });

    const failing = committer.done(2, 4n, commit);
    await settle();
    release(new Error('not the coordinator'));
    await expect(failing).rejects.toThrow('not the coordinator');
  });
});
