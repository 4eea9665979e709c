import { ChildProcess, execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from './waitFor';

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
/** The built main job: `npm test` and `npm run bench` build before they run anything. */
export const TALLY_MAIN = path.join(REPO_ROOT, 'services', 'tally', 'dist', 'main.js');

/** The built `tally` command. */
export const TALLY_CLI = path.join(REPO_ROOT, 'services', 'tally', 'dist', 'cli.js');

export interface TallyCommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the built `tally` command to its end, `env` added to this process's: its exit code and output, whether it succeeded or not. */
export async function runTallyCommand(args: readonly string[], env: Readonly<Record<string, string>>, timeoutMs = 60_000): Promise<TallyCommandResult> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [TALLY_CLI, ...args], { env: { ...process.env, ...env }, timeout: timeoutMs });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout: string; stderr: string };
    return { code: failed.code ?? -1, stdout: failed.stdout, stderr: failed.stderr };
  }
}

export interface TallyProcessOptions {
  /** TALLY_* variables for this process (roles, schema, key prefix, topics, group, port). */
  readonly env: Readonly<Record<string, string>>;
  /** How long start-up may take before the process is killed and the start fails. */
  readonly readyTimeoutMs?: number;
  /** Extra node flags, e.g. --cpu-prof. */
  readonly nodeArgs?: readonly string[];
  /** The main job to run; default this checkout's build (TALLY_MAIN). The bench runs another checkout's for a before/after pair. */
  readonly main?: string;
}

export interface TallyProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Every line the process printed (pino JSON on stdout, anything else on stderr). */
  readonly lines: readonly string[];
  /** Sends a signal and resolves with the exit code (or the signal name) once it has exited. */
  kill(signal?: NodeJS.Signals): Promise<number | string>;
  exited(): Promise<number | string>;
  /** Peak resident memory so far (VmHWM), in bytes; undefined once the process is gone. */
  peakRssBytes(): number | undefined;
}

/**
 * Runs the real main job as its own OS process, as an operator would, so tests can SIGKILL it,
 * restart it and run several in one consumer group. Resolves once it logs that it is running.
 */
export async function startTallyProcess(options: TallyProcessOptions): Promise<TallyProcess> {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.main ?? TALLY_MAIN], {
    cwd: REPO_ROOT,
    // Every process listens (the API, or /health and /metrics alone): on a free port unless the test names one.
    env: { ...process.env, TALLY_LOG_LEVEL: 'info', TALLY_API_PORT: '0', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let running = false;
  const collect = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.length === 0) continue;
      lines.push(line);
      if (line.includes('"Tally is running"')) running = true;
    }
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exit = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
  let exitedWith: number | string | undefined;
  void exit.then((value) => {
    exitedWith = value;
  });

  try {
    await waitFor(
      () => {
        if (exitedWith !== undefined) throw new Error(`exited with ${exitedWith}: ${lines.slice(-5).join('\n')}`);
        return running;
      },
      { description: `Tally (${options.env.TALLY_ROLES ?? 'all roles'}) to start`, timeoutMs: options.readyTimeoutMs ?? 60_000, intervalMs: 50 },
    );
  } catch (error) {
    child.kill('SIGKILL');
    await exit;
    throw error;
  }

  const pid = child.pid!;
  return {
    pid,
    child,
    lines,
    async kill(signal = 'SIGTERM') {
      if (exitedWith === undefined) child.kill(signal);
      return exit;
    },
    exited: () => exit,
    peakRssBytes() {
      try {
        const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        return match ? Number(match[1]) * 1024 : undefined;
      } catch {
        return undefined;
      }
    },
  };
}
