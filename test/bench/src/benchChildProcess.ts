import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

export interface BenchChildOptions {
  /** The line the script prints once it is ready (e.g. `listening`). */
  readonly ready: string;
  /** Every other line the script prints, as it arrives. */
  readonly onLine?: (line: string) => void;
  readonly readyTimeoutMs?: number;
}

/**
 * Starts one of the bench's helper scripts (a compiled file beside this one) as a process of its
 * own, with `options` as JSON in argv[2], and resolves once it printed its ready line; the
 * returned stop() sends SIGTERM and waits for it to exit. Rejects with the end of its stderr if
 * it exits or stays silent first.
 */
export async function startBenchChild(script: string, input: unknown, options: BenchChildOptions): Promise<{ stop(): Promise<void> }> {
  const child = spawn(process.execPath, [path.join(__dirname, script), JSON.stringify(input)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = once(child, 'exit');
  let becameReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (becameReady = resolve));
  let partial = '';
  child.stdout.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line === options.ready) becameReady();
      else if (line !== '') options.onLine?.(line);
    }
  });
  const deadline = new AbortController();
  const outcome = await Promise.race([
    ready.then(() => 'ready' as const),
    exited.then(() => 'exited' as const),
    delay(options.readyTimeoutMs ?? 60_000, 'timed out' as const, { signal: deadline.signal }).catch(() => 'timed out' as const),
  ]);
  deadline.abort();
  if (outcome !== 'ready') {
    child.kill('SIGTERM');
    throw new Error(`${script} did not print "${options.ready}" (${outcome}): ${stderr.slice(-2000)}`);
  }
  return {
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
