import { randomUUID } from 'node:crypto';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { tryAcquireAdvisoryLease } from '@tally/postgres';
import { createPostgresCheckpointStore } from '@tally/runtime';
import { createTestSchema, runTallyCommand, uniqueName, waitFor, type TestSchema } from '@tally/test-support';
import pino from 'pino';

jest.setTimeout(120_000);

/** `tally processors` and `tally relay-rewind` as an operator runs them: the built command against an event store and checkpoints of the test's own. */
describe('tally processors and tally relay-rewind', () => {
  let db: TestSchema;
  let store: EventStore;
  const topic = uniqueName('ledger_topic');
  const checkpointName = `ledger-relay:${topic}`;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'relay_rewind' });
    store = createPostgresEventStore({ pool: db.pool, logger: pino({ level: 'silent' }) });
    // Three events, each recorded in a later millisecond than the one before (times are read to the millisecond).
    for (let index = 0; index < 3; index += 1) {
      await store.appendToStream(`rewind-${randomUUID()}`, [{ id: randomUUID(), type: 'Probed', data: { index } }], { expectedRevision: 'no_stream' });
      const [last] = (await store.readAll({ maxCount: 100 })).slice(-1);
      await waitFor(() => Date.now() > last!.recordedAt.getTime(), { description: 'the next millisecond', timeoutMs: 5_000, intervalMs: 1 });
    }
  });

  afterAll(async () => {
    await store?.close();
    await db?.drop();
  });

  const tally = (...args: string[]) => runTallyCommand(args, { TALLY_DATABASE_URL: db.connectionString, TALLY_DATABASE_SCHEMA: db.schema });

  const rewind = (...args: string[]) => tally('relay-rewind', '--topic', topic, ...args);

  it('lists each processor with its checkpoint, how far behind the head it is, and the session that leads it', async () => {
    const [first, , third] = await store.readAll({ maxCount: 3 });
    const led = uniqueName('webhooks');
    await createPostgresCheckpointStore(db.pool).save(led, first!.position);
    const lease = await tryAcquireAdvisoryLease({ pool: db.pool, name: led });
    try {
      const listed = await tally('processors');
      expect(listed).toMatchObject({ code: 0, stderr: '' });
      const [header, ...rows] = listed.stdout.trimEnd().split('\n').map((line) => line.split(/ {2,}/));
      expect(header).toEqual(['processor', 'position', 'behind', 'saved', 'leader']);
      const row = rows.find(([name]) => name === led)!;
      expect(row.slice(0, 3)).toEqual([led, first!.position.toString(), (third!.position - first!.position).toString()]);
      expect(Date.parse(row[3]!)).toBeGreaterThan(Date.now() - 60_000);
      expect(row[4]).toMatch(/^pid \d+ \(test-relay_rewind\)$/);

      // For scripts: GET /v1/processors's answer, on one line.
      const json = await tally('processors', '--json');
      expect(json).toMatchObject({ code: 0, stderr: '' });
      const answer = JSON.parse(json.stdout) as { head: string; items: Array<{ name: string; position: string; behind: string; savedAt: string; leader: { pid: number; applicationName: string } | null }> };
      expect(json.stdout.trimEnd().split('\n')).toHaveLength(1);
      expect(BigInt(answer.head)).toBeGreaterThanOrEqual(third!.position);
      expect(answer.items.find(({ name }) => name === led)).toEqual({
        name: led,
        position: first!.position.toString(),
        behind: (BigInt(answer.head) - first!.position).toString(),
        savedAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/),
        leader: { pid: expect.any(Number), applicationName: 'test-relay_rewind' },
      });
    } finally {
      await lease!.release();
    }
    // Given up, it is led by nobody.
    const [, ...after] = (await tally('processors')).stdout.trimEnd().split('\n').map((line) => line.split(/ {2,}/));
    expect(after.find(([name]) => name === led)?.[4]).toBe('none');
  });

  it('says what it would do, does it, and refuses to move forward, while no relay holds the lease', async () => {
    const [first, second, third] = await store.readAll({ maxCount: 3 });
    const checkpoints = createPostgresCheckpointStore(db.pool);
    await checkpoints.save(checkpointName, third!.position);
    const time = second!.recordedAt.toISOString();

    const asked = await rewind('--to-time', time, '--dry-run');
    expect(asked).toMatchObject({ code: 0, stderr: '' });
    expect(asked.stdout).toBe(
      `${checkpointName}: would move the checkpoint from ${third!.position} back to ${first!.position}; the relay publishes again from position ${second!.position} (recorded ${time}) up to the head, ${third!.position}, when it next starts\n`,
    );
    expect(await checkpoints.load(checkpointName)).toBe(third!.position);

    expect((await rewind('--to-time', time)).stdout).toContain(`: moved the checkpoint from ${third!.position} back to ${first!.position};`);
    expect(await checkpoints.load(checkpointName)).toBe(first!.position);

    const forward = await rewind('--to-position', third!.position.toString());
    expect(forward.code).toBe(1);
    expect(forward.stderr).toContain(`tally: the checkpoint ${checkpointName} is at ${first!.position}; a rewind only moves it back`);
    // Back to the start: everything is published again.
    expect((await rewind('--to-position', '0')).stdout).toContain(`back to 0; the relay publishes again from position ${first!.position}`);
  });

  it('is refused while a relay holds the lease, naming its backend', async () => {
    const lease = await tryAcquireAdvisoryLease({ pool: db.pool, name: checkpointName });
    try {
      const refused = await rewind('--to-position', '0');
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(new RegExp(`^tally: a ledger relay holds ${checkpointName} \\(PostgreSQL backend \\d+\\): stop every process with the relay role, then rewind\\n$`));
    } finally {
      await lease!.release();
    }
  });

  it('refuses what is not a place to rewind to before connecting to anything', async () => {
    for (const args of [[], ['--to-time', '2026-03-01T00:00:00Z', '--to-position', '3'], ['--to-time', 'yesterday'], ['--to-position', '01'], ['--to-position', '-1']]) {
      const refused = await rewind(...args);
      expect({ args, code: refused.code }).toEqual({ args, code: 2 });
      expect(refused.stderr).toMatch(/^(tally: relay-rewind takes one of --to-time and --to-position|tally: --to-time must be ISO-8601 with a zone, e\.g\. 2026-03-01T12:00:00Z \(without one it would be each host's local time\)|tally: --to-position takes a non-negative integer|error: .*)\n/);
    }
  });
});
