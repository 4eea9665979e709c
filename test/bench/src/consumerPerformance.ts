import { spawn } from 'node:child_process';
import path from 'node:path';
import { stackConfig } from '@tally/test-support';

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
/** scripts/lib/kafka.sh resolves the broker's jars, kafka-tools among them, into this folder. */
const KAFKA_LIBS = path.join(process.env.TALLY_HOME ?? path.join(REPO_ROOT, '.tally'), 'kafka', 'libs');

export interface ConsumerPerformanceResult {
  readonly messages: number;
  /** Messages per second over the fetch time only (after the group was joined): the ceiling. */
  readonly fetchPerSecond: number;
  /** Messages per second including the group join. */
  readonly totalPerSecond: number;
  readonly fetchSeconds: number;
  /**
   * Why there is no ceiling: it stopped before reading every message (its --timeout without a
   * new message ends it with exit code 0 and the rate of what it read). The rates are NaN then.
   */
  readonly failure?: string;
}

/**
 * Ceiling (b) of the metering throughput: Kafka's own consumer benchmark, on the broker's jars,
 * reading the same topic in a group of its own. It neither decodes nor commits per batch: it is
 * what the broker and the loopback can deliver to one consumer on this machine.
 */
export async function runConsumerPerformance(topic: string, groupId: string, messages: number): Promise<ConsumerPerformanceResult> {
  const args = [
    '-Xms512m',
    '-Xmx512m',
    `-Dlog4j2.configurationFile=${path.join(REPO_ROOT, 'infra', 'kafka', 'log4j2-tools.xml')}`,
    '-cp',
    `${KAFKA_LIBS}/*`,
    'org.apache.kafka.tools.ConsumerPerformance',
    '--bootstrap-server',
    stackConfig.kafkaBrokers.join(','),
    '--topic',
    topic,
    '--group',
    groupId,
    '--messages',
    String(messages),
    '--timeout',
    '60000',
  ];
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn('java', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`ConsumerPerformance exited with ${code}: ${stderr.slice(-2000)}`))));
  });
  return parseConsumerPerformance(output, messages);
}

/**
 * Its report is a CSV-like header line ("start.time, end.time, ...") and one line of values. A
 * report of fewer than `expected` messages is no ceiling: a partial rate, with the wait for the
 * timeout in it or not, is not what the broker can deliver.
 */
export function parseConsumerPerformance(output: string, expected: number): ConsumerPerformanceResult {
  const lines = output.split('\n').map((line) => line.trim()).filter(Boolean);
  const headerIndex = lines.findIndex((line) => line.startsWith('start.time'));
  const values = lines[headerIndex + 1];
  if (headerIndex < 0 || values === undefined) throw new Error(`no ConsumerPerformance report in: ${output.slice(-2000)}`);
  const names = lines[headerIndex]!.split(',').map((name) => name.trim());
  const fields = new Map(names.map((name, index) => [name, values.split(',')[index]?.trim() ?? '']));
  const number = (name: string) => {
    const value = Number(fields.get(name));
    if (!Number.isFinite(value)) throw new Error(`ConsumerPerformance reported no number for ${name}: ${values}`);
    return value;
  };
  const messages = number('data.consumed.in.nMsg');
  if (messages < expected) {
    const count = (value: number) => value.toLocaleString('en-US');
    return {
      messages,
      fetchPerSecond: Number.NaN,
      totalPerSecond: Number.NaN,
      fetchSeconds: number('fetch.time.ms') / 1000,
      failure: `read ${count(messages)} of ${count(expected)} messages before it stopped`,
    };
  }
  return {
    messages,
    fetchPerSecond: number('fetch.nMsg.sec'),
    totalPerSecond: number('nMsg.sec'),
    fetchSeconds: number('fetch.time.ms') / 1000,
  };
}
