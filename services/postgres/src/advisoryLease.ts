import pg, { type Pool, type QueryResultRow } from 'pg';
import { queryWithTimeout } from './queryWithTimeout';

/** First key of the two-key advisory lock space for leases, apart from the migrations' and the event store's. */
const LEASE_LOCK_CLASS = 1952541798;
const DEFAULT_HEARTBEAT_MS = 2_000;
const DEFAULT_HEARTBEAT_TIMEOUT_MS = 5_000;
// current_schema() is null while the search_path names no schema that exists (a CLI run before the
// first migration): the name alone keys the lock then, where a null key would never be held.
/** The lock's second key: the schema and the name, hashed (SQL over `name`, a parameter or column). */
const schemaKeyed = (name: string) => `hashtext(coalesce(current_schema(), '') || '.' || ${name})`;
const LOCK_KEY = `$1, ${schemaKeyed('$2')}`;

function ignoreError(): void {}

export interface AdvisoryLeaseOptions {
  /** Where the lease's connection settings come from; the lease does not take a connection from it. */
  readonly pool: Pool;
  /**
   * What is leased, e.g. a relay's checkpoint name. The lock is keyed by the connection's current
   * schema and this name (hashed to 32 bits: two names can collide, which only makes their holders
   * take turns), so tests in schemas of their own never exclude each other.
   */
  readonly name: string;
  /** How often the holder's connection is checked; a lease is known lost within about this long. */
  readonly heartbeatMs?: number;
  /**
   * How long a heartbeat, the lock attempt or the unlock may wait for PostgreSQL (default 5 s).
   * A connection that stops answering without failing (a network partition) would otherwise hold
   * the holder in the belief that it still leads for as long as TCP takes to notice, while
   * PostgreSQL may have ended the session and let another holder in.
   */
  readonly timeoutMs?: number;
}

export interface AdvisoryLease {
  /** Settles when the lease is lost (its connection failed or was terminated); never after release(). */
  readonly lost: Promise<Error>;
  /** Gives the lease up, so another session can take it at once. */
  release(): Promise<void>;
}

/**
 * One attempt at a PostgreSQL session-level advisory lock, held on a connection of its own for as
 * long as the lease lasts. The connection is opened with the pool's settings but outside it: a
 * lease taken from the pool would keep one of its connections for as long as it leads, so a
 * process with a small TALLY_DATABASE_POOL_SIZE and several leased roles would have none left
 * for the work it leads for, and would keep the lease (its heartbeat still answers) while doing
 * nothing. A standby's attempt therefore opens and closes one connection per poll. Resolves to undefined when another session holds it; throws when
 * PostgreSQL cannot be reached. PostgreSQL releases the lock itself when the holder's session
 * ends (a crash, a kill, a network failure), so a lease never outlives its holder; the holder
 * learns of a loss from its connection's error or from the heartbeat, and must then stop acting
 * as the holder.
 */
export async function tryAcquireAdvisoryLease(options: AdvisoryLeaseOptions): Promise<AdvisoryLease | undefined> {
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const timeoutMs = options.timeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
  const client = new pg.Client(options.pool.options);
  // Errors after the lease has ended (a close that fails) go nowhere; while it lasts, onError
  // below reports them as its loss.
  client.on('error', ignoreError);
  try {
    await client.connect();
  } catch (error) {
    void client.end().catch(ignoreError);
    throw error;
  }
  const bounded = <Row extends QueryResultRow>(text: string, values?: unknown[]) => queryWithTimeout<Row>(client, text, values, timeoutMs);
  let signalLost: (error: Error) => void = () => undefined;
  const lost = new Promise<Error>((resolve) => {
    signalLost = resolve;
  });
  // A connection that the server drops emits 'error'; unhandled, it would crash the process.
  const onError = (error: Error): void => lose(error);
  client.on('error', onError);

  let ended = false;
  let heartbeat: NodeJS.Timeout | undefined = undefined;
  /**
   * Closes the connection, which ends its session and with it the lock. Not awaited: a connection
   * that stopped answering would hold the caller until TCP gives up; its errors go nowhere.
   */
  function giveBack(): void {
    ended = true;
    clearInterval(heartbeat);
    client.off('error', onError);
    void client.end().catch(ignoreError);
  }
  function lose(error: Error): void {
    if (ended) return;
    giveBack();
    signalLost(error);
  }

  let held: boolean;
  try {
    const { rows } = await bounded<{ held: boolean }>(`SELECT pg_try_advisory_lock(${LOCK_KEY}) AS held`, [LEASE_LOCK_CLASS, options.name]);
    held = rows[0]?.held === true;
  } catch (error) {
    lose(asError(error));
    throw error;
  }
  if (!held) {
    giveBack();
    return undefined;
  }

  // One heartbeat at a time: a slow one is not joined by more behind it, it times out and loses
  // the lease (destroying the connection, which ends the session and with it the lock).
  let beating = false;
  heartbeat = setInterval(() => {
    if (beating) return;
    beating = true;
    bounded('SELECT 1')
      .catch((error: unknown) => lose(asError(error)))
      .finally(() => {
        beating = false;
      });
  }, heartbeatMs);
  heartbeat.unref();

  return {
    lost,
    async release() {
      if (ended) return;
      // From here a connection failure is this call's to handle, not a lost lease. The unlock
      // lets another session in at once, before the connection has finished closing.
      ended = true;
      client.off('error', onError);
      try {
        await bounded(`SELECT pg_advisory_unlock(${LOCK_KEY})`, [LEASE_LOCK_CLASS, options.name]);
      } catch {
        // Closing the connection ends the session, which releases the lock all the same.
      }
      giveBack();
    },
  };
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** A session holding a lease: its backend pid and the application name its pool connected with. */
export interface LeaseHolderSession {
  readonly name: string;
  readonly pid: number;
  /** pg_stat_activity.application_name, e.g. `tally-relay`; empty when the client set none. */
  readonly applicationName: string;
}

/**
 * The sessions holding these leases in the pool's schema, by lease name: which process leads each
 * processor, and the pid to end its session with.
 */
export async function leaseHolderSessions(pool: Pool, names: readonly string[]): Promise<LeaseHolderSession[]> {
  // A two-key advisory lock shows in pg_locks as classid = key 1, objid = key 2 as an unsigned oid, objsubid = 2.
  const { rows } = await pool.query<{ name: string; pid: number; application_name: string | null }>(
    `SELECT n.name, l.pid, a.application_name FROM pg_locks l JOIN unnest($2::text[]) AS n(name)
       ON l.objid = ((${schemaKeyed('n.name')}::bigint & 4294967295)::text)::oid
       LEFT JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.classid = $1::oid AND l.objsubid = 2 AND l.granted`,
    [LEASE_LOCK_CLASS, names],
  );
  return rows.map((row) => ({ name: row.name, pid: row.pid, applicationName: row.application_name ?? '' }));
}

/**
 * The backend pids (pg_stat_activity.pid) holding these leases in the pool's schema: what an
 * operator looks for to see which process publishes, or to end its session.
 */
export async function leaseHolders(pool: Pool, names: readonly string[]): Promise<number[]> {
  return (await leaseHolderSessions(pool, names)).map((session) => session.pid);
}
