import { EventEmitter } from 'node:events';
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
 * SIGHUP began never ended, and the process kept its leases. Any other write error still throws.
 */
function quietWhenOutputLost(stream: DestinationStream): DestinationStream {
  if (!(stream instanceof EventEmitter)) return stream;
  const writable = stream as DestinationStream & EventEmitter & { end?: unknown; flushSync?: unknown; destroy?: unknown };
  const lost = (error: NodeJS.ErrnoException) => {
    if (error.code === 'EIO' || error.code === 'EPIPE') {
      Object.assign(writable, { write: noop, end: noop, flushSync: noop, destroy: noop });
      return;
    }
    writable.removeListener('error', lost);
    process.nextTick(() => {
      throw error;
    });
  };
  writable.on('error', lost);
  return stream;
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
  return pino(settings, quietWhenOutputLost(destination ?? pino.destination({ dest: 1, sync: false })));
}
