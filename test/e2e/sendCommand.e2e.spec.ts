import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readTopicToEnds } from '@tally/kafka';
import { createTestKafka, deleteTopics, runTallyCommand, TALLY_CLI, uniqueName, waitFor } from '@tally/test-support';
import type { Admin, Kafka } from 'kafkajs';

jest.setTimeout(120_000);

/** Small enough that a few thousand events pass it in one batch, as ~10k pass Kafka's default 1 MiB. */
const MAX_MESSAGE_BYTES = 100_000;

/** `tally send` as an engineer runs it: what it prints is what arrives on the usage topic. */
describe('tally send', () => {
  let kafka: Kafka;
  let admin: Admin;
  const topics: string[] = [];

  beforeAll(async () => {
    kafka = createTestKafka(uniqueName('send-command'));
    admin = kafka.admin();
    await admin.connect();
  });

  afterAll(async () => {
    await deleteTopics(admin, topics).catch(() => undefined);
    await admin.disconnect();
  });

  async function usageTopic(): Promise<string> {
    const topic = uniqueName('send_command');
    await admin.createTopics({
      topics: [{ topic, numPartitions: 1, replicationFactor: 1, configEntries: [{ name: 'max.message.bytes', value: String(MAX_MESSAGE_BYTES) }] }],
      waitForLeaders: true,
    });
    topics.push(topic);
    return topic;
  }

  async function onTopic(topic: string): Promise<Array<Record<string, unknown>>> {
    const values: Array<Record<string, unknown>> = [];
    await readTopicToEnds({ kafka, topic, purpose: 'send-command-test', eachBatch: async (_partition, messages) => void values.push(...messages.map((m) => JSON.parse(m.value!.toString()) as Record<string, unknown>)) });
    return values;
  }

  const send = (topic: string, ...args: string[]) => runTallyCommand(['send', '--json', ...args], { TALLY_USAGE_TOPIC: topic, TALLY_LOG_LEVEL: 'silent' });

  it('sends a --count batch larger than the topic takes in one send, every event arriving in order', async () => {
    const topic = await usageTopic();
    const count = 3000;
    const sent = await send(topic, '-c', uniqueName('acme'), '-e', 'api_call', '-n', String(count), '-p', 'region=eu-west-1', '--timestamp', '2026-03-01T12:00:00+01:00');
    expect([sent.code, sent.stderr]).toEqual([0, '']);
    const printed = sent.stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(printed).toHaveLength(count);
    // The control: the events together are well over what one send may hold.
    expect(printed.reduce((bytes, event) => bytes + JSON.stringify(event).length, 0)).toBeGreaterThan(2 * MAX_MESSAGE_BYTES);
    expect(new Set(printed.map((event) => event.timestamp))).toEqual(new Set([Date.UTC(2026, 2, 1, 11)]));
    expect(await onTopic(topic)).toEqual(printed);
  });

  it('prints the events alone on stdout, its log lines (however verbose) on stderr', async () => {
    const topic = await usageTopic();
    const sent = await runTallyCommand(['send', '--json', '-c', 'acme', '-e', 'api_call', '-n', '3'], { TALLY_USAGE_TOPIC: topic, TALLY_LOG_LEVEL: 'debug' });
    expect(sent.code).toBe(0);
    // What a script pipes on: every line an event, none a log line.
    const printed = sent.stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(printed.map((event) => [event.customerId, event.event])).toEqual(Array.from({ length: 3 }, () => ['acme', 'api_call']));
    // The control: at debug the Kafka client does log, there.
    expect(sent.stderr.split('\n').filter((line) => line.startsWith('{"level":')).length).toBeGreaterThan(0);
    expect(await onTopic(topic)).toEqual(printed);
  });

  it('sends an ISO --timestamp the consumer takes as a number, down to the earliest (1973-03-03T09:46:40Z)', async () => {
    const topic = await usageTopic();
    const sent = await send(topic, '-c', 'acme', '-e', 'api_call', '--id', 'earliest', '--timestamp', '1973-03-03T09:46:40Z');
    expect([sent.code, sent.stderr]).toEqual([0, '']);
    expect(await onTopic(topic)).toEqual([expect.objectContaining({ id: 'earliest', timestamp: 100_000_000_000 })]);
  });

  it.each([['SIGINT'], ['SIGTERM'], ['SIGHUP']] as const)(
    'on %s stops after the part in hand, having printed exactly the events on the topic, and says how many (exit 1)',
    async (signal) => {
      const topic = await usageTopic();
      const count = 1_000_000;
      const child = spawn(process.execPath, [TALLY_CLI, 'send', '--json', '-c', uniqueName('acme'), '-e', 'api_call', '-n', String(count)], {
        env: { ...process.env, TALLY_USAGE_TOPIC: topic, TALLY_LOG_LEVEL: 'silent' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => void (stdout += chunk.toString('utf8')));
      child.stderr.on('data', (chunk: Buffer) => void (stderr += chunk.toString('utf8')));
      const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
      // Part way: some events out, most of the million not yet.
      await waitFor(() => stdout.includes('\n') || child.exitCode !== null, { description: 'the first events printed', timeoutMs: 60_000, intervalMs: 20 });
      child.kill(signal);
      const [code, killedBy] = await exited;
      expect({ code, killedBy }).toEqual({ code: 1, killedBy: null });
      // Whole lines: it was not cut off mid-write.
      const printed = stdout.trimEnd().split('\n').map((line) => (JSON.parse(line) as { id: string }).id);
      expect(stderr).toBe(`tally: stopped by ${signal}: sent ${printed.length} of the ${count} events (those printed); the rest were not made or not sent\n`);
      // The control: it stopped part way.
      expect(printed.length).toBeLessThan(count);
      const onTheTopic = (await onTopic(topic)).map((event) => event.id);
      expect(onTheTopic).toEqual(printed);
    },
  );
});
