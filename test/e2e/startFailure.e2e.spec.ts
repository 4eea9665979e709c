import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import {
  createTestKafka,
  createTestSchema,
  createTestTopic,
  deleteTopics,
  stackConfig,
  TALLY_MAIN,
  uniqueName,
  type TestSchema,
} from '@tally/test-support';
import type { Admin } from 'kafkajs';

jest.setTimeout(120_000);

/**
 * A main job whose start fails part way (here its port is taken, an operator's mistake) stops what
 * it had started before it exits 1: the consumer that joined its group leaves it, so its
 * partitions go to the other members now, not after the session timeout. And it says what is
 * wrong in one line, naming the port and the setting, without a stack trace.
 */
describe('the main job whose start fails', () => {
  let db: TestSchema;
  let admin: Admin;
  let taken: Server;
  let port: number;
  const topics: string[] = [];

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'start_failure' });
    admin = createTestKafka(uniqueName('start-failure')).admin();
    await admin.connect();
    for (const part of ['usage', 'dlq']) topics.push(await createTestTopic(admin, { prefix: `start_failure_${part}`, partitions: 2 }));
    // Another process's port, as the main job finds it.
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    port = (taken.address() as { port: number }).port;
  });

  afterAll(async () => {
    await new Promise((resolve) => taken?.close(resolve));
    await deleteTopics(admin, topics).catch(() => undefined);
    await admin?.disconnect();
    await db?.drop();
  });

  it('leaves the consumer group it joined and exits 1 with one line naming the port in use', async () => {
    const group = uniqueName('start_failure');
    const child = spawn(process.execPath, [TALLY_MAIN], {
      env: {
        ...process.env,
        TALLY_LOG_LEVEL: 'info',
        TALLY_ROLES: 'consumer',
        TALLY_DATABASE_URL: stackConfig.testDatabaseUrl,
        TALLY_DATABASE_SCHEMA: db.schema,
        TALLY_USAGE_TOPIC: topics[0]!,
        TALLY_DLQ_TOPIC: topics[1]!,
        TALLY_CONSUMER_GROUP: group,
        // Long, so that a member left behind is still listed when the test looks.
        TALLY_CONSUMER_SESSION_TIMEOUT_MS: '120000',
        TALLY_API_HOST: '127.0.0.1',
        TALLY_API_PORT: String(port),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => void (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => void (stderr += chunk.toString('utf8')));
    const [code] = (await once(child, 'close')) as [number | null];
    // The control: the consumer had started, so there was a member to leave.
    expect(stdout).toContain('"usage consumer started"');
    const { groups } = await admin.describeGroups([group]);
    expect({
      code,
      // Node's own warnings (a deprecation) may come before it; the message is Tally's one line.
      said: stderr.split('\n').filter((line) => line.startsWith('tally:')),
      stackLines: stderr.split('\n').filter((line) => /^\s+at /.test(line)),
      members: groups[0]!.members.map(({ memberId }) => memberId),
    }).toEqual({
      code: 1,
      said: [`tally: failed to start: TALLY_API_PORT ${port} on TALLY_API_HOST 127.0.0.1 is in use (EADDRINUSE): stop what listens there, or set another port`],
      stackLines: [],
      members: [],
    });
  });
});
