import { createEventStoreDbEventStore, createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createPool } from '@tally/postgres';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { ConfigError, type Config } from './config';

/**
 * The event store TALLY_EVENT_STORE names, for the main job and the CLI alike: the one place that
 * chooses, so nothing else changes with the choice. An EventStoreDB that cannot be reached (or
 * read: $all needs a user allowed to read it) stops the start with the reason, rather than the
 * first append of some role failing later.
 */
export async function openEventStore(config: Pick<Config, 'eventStore'>, pool: Pool, logger: Logger): Promise<EventStore> {
  const chosen = config.eventStore;
  if (chosen.kind === 'postgres') return createPostgresEventStore({ pool, logger });
  const where = redactedConnectionString(chosen.connectionString);
  let store: EventStore;
  try {
    store = createEventStoreDbEventStore({ connectionString: chosen.connectionString, logger });
  } catch (error) {
    throw new ConfigError(`TALLY_EVENTSTORE_CONNECTION_STRING (${where}): ${parseFailure(error)}`);
  }
  try {
    await store.headPosition();
  } catch (error) {
    await store.close().catch(() => undefined);
    throw new ConfigError(`TALLY_EVENTSTORE_CONNECTION_STRING: cannot use the EventStoreDB at ${where}: ${error instanceof Error ? error.message : String(error)}`);
  }
  logger.info({ eventStore: 'eventstoredb', at: where }, 'event store: EventStoreDB');
  return store;
}

/** The PostgreSQL pool TALLY_DATABASE_* describe, for the main job and the CLI alike. */
export function openPool(config: Pick<Config, 'database' | 'timeouts'>, client: { applicationName: string; max: number; logger?: Logger }): Pool {
  return createPool({
    connectionString: config.database.url,
    schema: config.database.schema,
    statementTimeoutMillis: config.timeouts.databaseStatementMs,
    connectionTimeoutMillis: config.timeouts.databaseConnectMs,
    ...client,
  });
}

/**
 * The connection string without its user and password. @eventstore/db-client takes them
 * unencoded (parseConnectionString.js: `[^:]+:[^@]+@` right after `://`), so a password may hold
 * `/`, `?` or `@`, and its host list may hold `@` too: no `/` or `?` marks where the credentials
 * end, only an `@` does, and beyond the last one no password can lie. So everything from `://` to
 * the last `@` is hidden: a host or query hidden with it (`?connectionName=ops@team`) is better
 * than part of a password shown.
 */
export function redactedConnectionString(connectionString: string): string {
  const scheme = /^[a-z+]+:\/\//i.exec(connectionString)?.[0] ?? '';
  const lastAt = connectionString.lastIndexOf('@');
  return lastAt < scheme.length ? connectionString : `${scheme}***${connectionString.slice(lastAt)}`;
}

/** The client's reason for refusing a connection string, without the text of it that it quotes (part of a password, perhaps). */
function parseFailure(error: unknown): string {
  return (error as Error).message.replace(/Unexpected ".*" at position/s, 'Unexpected text at position');
}
