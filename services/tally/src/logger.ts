import { EventEmitter } from 'node:events';
import { isatty } from 'node:tty';
import pino, { type DestinationStream, type Logger } from 'pino';

/** Where a secret may sit in a log line's object: headers, keys, passwords and connection URLs, at the top or one level down. */
const SECRET_FIELDS = [
  'authorization',
  'cookie',
  'apiKey',
  'apiKeys',
  'password',
  'secret',
  'sessionSecret',
  'connectionString',
  'databaseUrl',
  'redisUrl',
  'sasl',
];
export const REDACTED_PATHS = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((field) => `*.${field}`),
  'headers.authorization',
  'headers.cookie',
  '*.headers.authorization',
  '*.headers.cookie',
];

const noop = () => undefined;

/**
 * Output that went away ends logging, not the process: the terminal that ran it closed (EIO, as
 * a SIGHUP arrives) or its reader did (EPIPE). pino quiets only EPIPE; on EIO the write error was
 * thrown, and pino's flush at exit then retried the write every 100 ms for ever: the stop a
 * SIGHUP began never ended, and the process kept its leases. EIO is quieted only on a terminal:
 * on a file (`npm start >> tally.log`) it is a failing disk, and every later line would be lost
 * unseen. Any other write error is thrown (`rethrow`), as before.
 */
export function quietWhenOutputLost(
  stream: DestinationStream,
  options: { readonly terminal: boolean; readonly rethrow?: (error: Error) => void },
): DestinationStream {
  if (!(stream instanceof EventEmitter)) return stream;
  const writable = stream as DestinationStream & EventEmitter;
  const rethrow =
    options.rethrow ??
    ((error: Error) =>
      process.nextTick(() => {
        throw error;
      }));
  const lost = (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE' || (error.code === 'EIO' && options.terminal)) {
      Object.assign(writable, { write: noop, end: noop, flushSync: noop, destroy: noop });
      return;
    }
    // pino's own listener emits a write error again: thrown once.
    writable.removeListener('error', lost);
    rethrow(error);
  };
  writable.on('error', lost);
  return stream;
}

/** The file descriptor a destination writes to, where it says (pino's SonicBoom does). */
function descriptorOf(stream: DestinationStream): number | undefined {
  const fd = (stream as { fd?: unknown }).fd;
  return typeof fd === 'number' ? fd : undefined;
}

function withoutStack(error: Error): Record<string, unknown> {
  const { stack: _stack, ...rest } = pino.stdSerializers.err(error);
  return rest;
}

/**
 * The main job's and the CLI's logger: one place, so neither can log a key, a password or a
 * connection URL that some object handed to it happened to carry. To stdout, unless given
 * another destination.
 */
export function createLogger(
  options: { readonly level: string; readonly base?: Record<string, unknown>; readonly stacks?: boolean },
  destination?: DestinationStream,
): Logger {
  const settings = {
    level: options.level,
    ...(options.base !== undefined ? { base: options.base } : {}),
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    // `stacks: false` (the CLI at its default level): an operator's terminal gets the error's type
    // and message, not a stack for what is routine there (a missing topic, a Ctrl-C).
    ...(options.stacks === false ? { serializers: { err: withoutStack } } : {}),
  };
  // Synchronous: a line is out when the call returns. pino's asynchronous default lost the last
  // lines before process.exit (`stopped; bye`) when a write was in flight, as under load, while
  // Tally logs a few lines a second at info (the consumer's per-chunk lines are debug).
  const output = destination ?? pino.destination({ dest: 1, sync: true });
  const fd = destination === undefined ? 1 : descriptorOf(destination);
  return pino(settings, quietWhenOutputLost(output, { terminal: fd !== undefined && isatty(fd) }));
}
