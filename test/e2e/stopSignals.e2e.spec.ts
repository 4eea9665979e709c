import { createTestSchema, stackConfig, startTallyProcess, waitFor, type TallyProcess, type TestSchema } from '@tally/test-support';

jest.setTimeout(120_000);

/**
 * The main job stops cleanly on each signal an operator or a terminal sends it: SIGTERM (a
 * supervisor), SIGINT (Ctrl-C) and SIGHUP (the SSH session or terminal that ran `npm start` went
 * away, or `kill -HUP` by someone expecting a reload). Node's default for each is to die on the
 * spot, without finishing the work in hand or closing a connection.
 */
describe('the main job on a stop signal', () => {
  let db: TestSchema;
  const processes: TallyProcess[] = [];

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'stop_signals' });
  });

  afterAll(async () => {
    for (const tally of processes) await tally.kill('SIGKILL');
    await db?.drop();
  });

  it.each([['SIGTERM'], ['SIGINT'], ['SIGHUP']] as const)('stops its roles on %s and exits 0 after saying so', async (signal) => {
    // The scheduler alone: roles that stop, with PostgreSQL only.
    const tally = await startTallyProcess({ env: { TALLY_ROLES: 'scheduler', TALLY_DATABASE_URL: stackConfig.testDatabaseUrl, TALLY_DATABASE_SCHEMA: db.schema } });
    processes.push(tally);
    expect(await tally.kill(signal)).toBe(0);
    // The exit can be told before the last lines are read from its pipes.
    await waitFor(() => tally.child.stdout?.closed === true && tally.child.stderr?.closed === true, { description: "the process's output read to its end", timeoutMs: 10_000, intervalMs: 20 });
    const messages = tally.lines.flatMap((line) => {
      try {
        return [JSON.parse(line) as { msg?: string; signal?: string }];
      } catch {
        return [];
      }
    });
    expect(messages.find((line) => line.msg === 'stopping')).toMatchObject({ signal });
    expect(messages.map((line) => line.msg).slice(-1)).toEqual(['stopped; bye']);
  });
});
