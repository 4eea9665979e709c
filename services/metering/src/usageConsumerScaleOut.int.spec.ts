import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { formatCredits, MICROS_PER_CREDIT } from '@tally/domain';
import { stackConfig, waitFor } from '@tally/test-support';
import { createMeteringTestKit, type MeteringTestKit, type UsageRecord } from './meteringTestKit.spec';

jest.setTimeout(240_000);

/** The built entry (`npx tsc -b tsconfig.build.json`, which `npm test` runs before jest). */
const CONSUMER_PROCESS = path.resolve(__dirname, '../dist/testing/consumerProcess.js');

const CUSTOMERS = Array.from({ length: 24 }, (_, i) => `cust-${String(i).padStart(2, '0')}`);
const EVENTS = 6000;
const STARTING = 1000n * MICROS_PER_CREDIT;

/** Event i: an api_call (0.01) or tokens × (i mod 97 + 1) at 0.000007 each. */
function usageAt(i: number): { record: UsageRecord; cost: bigint } {
  const customerId = CUSTOMERS[i % CUSTOMERS.length]!;
  if (i % 3 === 0) {
    return { record: { id: `scale-${i}`, customerId, event: 'api_call', timestamp: Date.UTC(2026, 2, 1), properties: {} }, cost: 10_000n };
  }
  const count = (i % 97) + 1;
  return {
    record: { id: `scale-${i}`, customerId, event: 'tokens', timestamp: Date.UTC(2026, 2, 1), properties: { count } },
    cost: 7n * BigInt(count),
  };
}

describe('usage consumer scaled out over processes', () => {
  let kit: MeteringTestKit;
  const children: ChildProcess[] = [];

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await kit?.close();
  });

  function startProcess(name: string): { child: ChildProcess; output: () => string } {
    let output = '';
    const child = spawn(process.execPath, [CONSUMER_PROCESS], {
      env: {
        ...process.env,
        TALLY_TEST_BROKERS: stackConfig.kafkaBrokers.join(','),
        TALLY_TEST_REGISTRY_URL: stackConfig.schemaRegistryUrl,
        TALLY_TEST_TOPIC: kit.topic,
        TALLY_TEST_DLQ_TOPIC: kit.dlqTopic,
        TALLY_TEST_GROUP: kit.groupId,
        TALLY_TEST_DATABASE_URL: kit.db.connectionString,
        TALLY_TEST_DATABASE_SCHEMA: kit.db.schema,
        TALLY_TEST_BATCH_SIZE: '100',
        TALLY_TEST_SESSION_TIMEOUT_MS: '8000',
        TALLY_TEST_LOG_LEVEL: process.env.TALLY_TEST_LOG_LEVEL ?? 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      if (process.env.TALLY_TEST_LOG_LEVEL !== undefined) process.stdout.write(`[${name}] ${chunk.toString()}`);
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    children.push(child);
    return { child, output: () => output };
  }

  async function consumedCount(): Promise<number> {
    const { rows } = await kit.db.pool.query<{ count: string }>("SELECT count(*) FROM events WHERE type = 'CreditConsumed'");
    return Number(rows[0]!.count);
  }

  async function groupMembers(): Promise<number> {
    const { groups } = await kit.admin.describeGroups([kit.groupId]);
    return groups[0]?.state === 'Stable' ? groups[0].members.length : 0;
  }

  it('stays exact when one of two consumer processes is killed with SIGKILL halfway', async () => {
    if (!existsSync(CONSUMER_PROCESS)) throw new Error(`${CONSUMER_PROCESS} is missing: run npx tsc -b tsconfig.build.json first`);
    kit = await createMeteringTestKit({ partitions: 6 });
    await kit.createProduct({
      id: 'api',
      name: 'API',
      consumption: [
        { event: 'api_call', credits: '0.01' },
        { event: 'tokens', credits: '0.000007', perUnitOf: 'count' },
      ],
      lowBalanceThreshold: '999.5',
    });
    const balances = new Map<string, string>();
    for (const customerId of CUSTOMERS) balances.set(customerId, await kit.openBalance(customerId, 'api', formatCredits(STARTING)));
    const expected = new Map(CUSTOMERS.map((customerId) => [customerId, STARTING]));
    const messages = Array.from({ length: EVENTS }, (_, i) => {
      const { record, cost } = usageAt(i);
      expected.set(record.customerId, expected.get(record.customerId)! - cost);
      return { key: record.customerId, value: i % 2 === 0 ? kit.avro(record) : kit.json(record) };
    });
    const produceRange = async (from: number, to: number) => {
      for (let start = from; start < to; start += 500) await kit.produce(messages.slice(start, Math.min(start + 500, to)));
    };

    const victim = startProcess('victim');
    const survivor = startProcess('survivor');
    await waitFor(async () => (await groupMembers()) === 2, { description: 'both processes in the group', timeoutMs: 60_000 });

    await produceRange(0, EVENTS / 2);
    await waitFor(async () => (await consumedCount()) >= EVENTS / 4, { description: 'a quarter metered', timeoutMs: 60_000 });
    // Halfway: kill one member mid-stream, without stop() or a commit, while events keep coming.
    const killed = once(victim.child, 'exit');
    victim.child.kill('SIGKILL');
    await produceRange(EVENTS / 2, EVENTS);
    const [, signal] = await killed;
    expect(signal).toBe('SIGKILL');

    await waitFor(async () => (await consumedCount()) >= EVENTS, {
      description: `all ${EVENTS} usage events metered by the survivor`,
      timeoutMs: 120_000,
      intervalMs: 500,
    });
    for (const customerId of CUSTOMERS) {
      expect(await kit.balanceOf(balances.get(customerId)!)).toBe(formatCredits(expected.get(customerId)!));
    }
    expect(await consumedCount()).toBe(EVENTS);
    // One warning per balance that crossed the threshold: none twice, none lost to a redelivery.
    const { rows } = await kit.db.pool.query<{ warnings: string; streams: string }>(
      "SELECT count(*) AS warnings, count(DISTINCT stream_id) AS streams FROM events WHERE type = 'LowBalanceWarned'",
    );
    const crossed = CUSTOMERS.filter((customerId) => expected.get(customerId)! < 999_500_000n).length;
    expect(crossed).toBeGreaterThan(0);
    expect(rows[0]).toEqual({ warnings: String(crossed), streams: String(crossed) });

    // SIGTERM: the survivor finishes, commits, leaves the group and exits 0.
    const exited = once(survivor.child, 'exit');
    survivor.child.kill('SIGTERM');
    const [code] = await exited;
    if (code !== 0) throw new Error(`survivor exited with ${String(code)}:\n${survivor.output()}`);
    await waitFor(async () => (await kit.admin.describeGroups([kit.groupId])).groups[0]?.state === 'Empty', {
      description: 'the group empty after the survivor left',
      timeoutMs: 30_000,
    });
  });
});
