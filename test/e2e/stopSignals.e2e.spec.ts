import { spawn } from 'node:child_process';
import { createTestSchema, stackConfig, startTallyProcess, TALLY_MAIN, waitFor, type TallyProcess, type TestSchema } from '@tally/test-support';

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

  it('exits when the terminal it runs in goes away, though it can no longer write its log', async () => {
    // A real terminal: script(1) runs the main job on a pseudo-terminal and relays its output.
    // Killed, it closes the terminal: the kernel sends the job SIGHUP, and every write to its
    // output fails with EIO from then on (pipes, as above, never do).
    const env = { ...process.env, TALLY_LOG_LEVEL: 'info', TALLY_API_PORT: '0', TALLY_ROLES: 'scheduler', TALLY_DATABASE_URL: stackConfig.testDatabaseUrl, TALLY_DATABASE_SCHEMA: db.schema };
    const terminal = spawn('script', ['-q', '-f', '-e', '-c', `exec ${process.execPath} ${TALLY_MAIN}`, '/dev/null'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    terminal.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    let pid: number | undefined;
    try {
      await waitFor(() => /"msg":"Tally is running/.test(output), { description: 'the main job running in the terminal', timeoutMs: 60_000 });
      pid = Number(/"pid":(\d+)/.exec(output)![1]);
      const alive = () => {
        try {
          process.kill(pid!, 0);
          return true;
        } catch {
          return false;
        }
      };
      expect(alive()).toBe(true);
      terminal.kill('SIGKILL');
      // Its stop takes well under the shutdown timeout (15 s): it is bounded, never waited out.
      await waitFor(() => !alive(), { description: 'the main job gone with its terminal', timeoutMs: 30_000, intervalMs: 50 });
    } finally {
      terminal.kill('SIGKILL');
      if (pid !== undefined) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Gone already.
        }
      }
    }
  });
});
