import { connect } from 'node:net';
import type { TallyApiClient } from './tallyApiClient';

export interface HeldOutcome {
  readonly kind: string;
  /** The status the server answered before closing, if any. */
  readonly status: number | undefined;
  /** Whether the server closed the connection before `giveUpMs`. */
  readonly closedByServer: boolean;
  readonly heldMs: number;
}

/**
 * A client that opens a connection, sends `bytes` (the start of a request it never finishes, or
 * nothing) and waits for the server to give up on it: what a slowloris attack does, once.
 */
export function holdConnection(port: number, kind: string, bytes: string, giveUpMs: number): Promise<HeldOutcome> {
  return new Promise((resolve) => {
    const startedAt = Date.now();
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    let done = false;
    const finish = (closedByServer: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const match = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ kind, status: match ? Number(match[1]) : undefined, closedByServer, heldMs: Date.now() - startedAt });
    };
    const timer = setTimeout(() => finish(false), giveUpMs);
    socket.on('data', (chunk) => (text += chunk.toString('latin1')));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.on('connect', () => {
      if (bytes.length > 0) socket.write(bytes);
    });
  });
}

/** Latencies (ms) of authenticated balance reads, one after another, until `until` resolves or `max` reads. */
export async function timeReads(api: TallyApiClient, balanceId: string, { min, max, until }: { min: number; max: number; until?: Promise<unknown> }) {
  let finished = until === undefined;
  void until?.finally(() => {
    finished = true;
  });
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  while (latencies.length < max && (latencies.length < min || !finished)) {
    const startedAt = performance.now();
    const response = await api.getBalance(balanceId).catch((error: unknown) => ({ status: String(error) }));
    latencies.push(performance.now() - startedAt);
    statuses[String(response.status)] = (statuses[String(response.status)] ?? 0) + 1;
  }
  return { latencies, statuses };
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}
