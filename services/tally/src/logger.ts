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

/**
 * The main job's and the CLI's logger: one place, so neither can log a key, a password or a
 * connection URL that some object handed to it happened to carry.
 */
export function createLogger(options: { readonly level: string; readonly base?: Record<string, unknown> }, destination?: DestinationStream): Logger {
  const settings = {
    level: options.level,
    ...(options.base !== undefined ? { base: options.base } : {}),
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  return destination === undefined ? pino(settings) : pino(settings, destination);
}
