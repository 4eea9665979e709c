import { connect } from 'node:net';

type ProbeState = 'up' | 'down';

/** A broker that accepts a TCP connection; cheap enough for every health probe, and holds nothing open. */
export function probeTcp(hostPort: string, timeoutMs: number): Promise<ProbeState> {
  const separator = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, separator);
  const port = Number(hostPort.slice(separator + 1));
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs });
    const finish = (state: ProbeState) => {
      socket.destroy();
      resolve(state);
    };
    socket.once('connect', () => finish('up'));
    socket.once('timeout', () => finish('down'));
    socket.once('error', () => finish('down'));
  });
}

/** Any broker of the list reachable is enough: the client fails over between them. */
export async function probeKafka(brokers: readonly string[], timeoutMs: number): Promise<ProbeState> {
  const states = await Promise.all(brokers.map((broker) => probeTcp(broker, timeoutMs)));
  return states.includes('up') ? 'up' : 'down';
}

/** The schema registry answers its subject list (the Confluent-compatible API's cheapest call). */
export async function probeRegistry(
  registryUrl: string,
  timeoutMs: number,
  auth?: { readonly username: string; readonly password: string },
): Promise<ProbeState> {
  const headers: Record<string, string> =
    auth === undefined ? {} : { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` };
  try {
    const response = await fetch(`${registryUrl.replace(/\/$/, '')}/subjects`, { signal: AbortSignal.timeout(timeoutMs), headers });
    return response.ok ? 'up' : 'down';
  } catch {
    return 'down';
  }
}
