import { spawn } from 'node:child_process';
import { stackConfig } from '@tally/test-support';

export interface RedisBenchmarkResult {
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/**
 * Redis's own benchmark client running one command against the stack's Redis, `-r keyspace`
 * replacing `__rand_int__` in the key with a random 12-digit zero-padded number below it.
 */
export async function runRedisBenchmark(command: readonly string[], { keyspace, requests, clients }: { keyspace: number; requests: number; clients: number }): Promise<RedisBenchmarkResult> {
  const url = new URL(stackConfig.redisUrl);
  const args = ['-h', url.hostname, '-p', url.port || '6379', '-n', String(requests), '-c', String(clients), '-P', '1', '-r', String(keyspace), '--csv', ...command];
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn('redis-benchmark', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`redis-benchmark exited with ${code}: ${stderr.slice(-2000)}`))));
  });
  return parseRedisBenchmarkCsv(output);
}

/** `--csv`: a header ("test","rps","avg_latency_ms",...) and one quoted line per test. */
export function parseRedisBenchmarkCsv(output: string): RedisBenchmarkResult {
  const rows = output
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => line.split('","').map((cell) => cell.replace(/^"|"$/g, '')));
  const header = rows[0];
  const values = rows[1];
  if (header?.[0] !== 'test' || values === undefined) throw new Error(`no redis-benchmark CSV in: ${output.slice(-2000)}`);
  const number = (name: string) => {
    const value = Number(values[header.indexOf(name)]);
    if (!Number.isFinite(value)) throw new Error(`redis-benchmark reported no number for ${name}: ${values.join(',')}`);
    return value;
  };
  return { perSecond: number('rps'), p50Ms: number('p50_latency_ms'), p99Ms: number('p99_latency_ms'), maxMs: number('max_latency_ms') };
}
