import pg from 'pg';
import type { Logger } from 'pino';
import { quoteIdentifier } from './sqlIdentifier';

/**
 * Called with a notification's payload, or with `undefined` when the connection was lost: the
 * notifications sent meanwhile are gone, so whatever they would have said must be assumed.
 */
type NotificationWaker = (payload: string | undefined) => void;

/**
 * One LISTEN connection per channel and user (the event store's subscriptions, the consumer's
 * balance registry cache): a notification wakes them all; each re-reads what it needs. The connection is opened outside the pool (it is
 * held for as long as anything subscribes) with the pool's settings, on first use, and again
 * after it fails. Losing it only delays delivery: subscriptions also poll.
 */
export class NotificationListener {
  private client: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private readonly wakers = new Set<NotificationWaker>();
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly channel: string,
    private readonly logger: Logger,
  ) {
    quoteIdentifier(channel);
  }

  /** Registers a callback for every notification, and for the loss of the connection. */
  register(waker: NotificationWaker): () => void {
    this.wakers.add(waker);
    return () => {
      this.wakers.delete(waker);
    };
  }

  /** Whether LISTEN is in place now: notifications are arriving. */
  get listening(): boolean {
    return this.client !== undefined;
  }

  /** Resolves once LISTEN is in place; rejects when it could not be set up (retry later). */
  ensureListening(): Promise<void> {
    if (this.closed || this.client) return Promise.resolve();
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.connecting?.catch(() => undefined);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client(this.pool.options);
    client.on('notification', (message) => this.wakeAll(message.payload ?? ''));
    client.on('error', (error) => this.drop(client, error));
    client.on('end', () => this.drop(client, undefined));
    try {
      await client.connect();
      await client.query(`LISTEN ${quoteIdentifier(this.channel)}`);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.logger.debug({ channel: this.channel }, 'listening');
  }

  private drop(client: pg.Client, error: Error | undefined): void {
    if (this.client !== client) return;
    this.client = undefined;
    if (error) void client.end().catch(() => undefined);
    if (!this.closed) {
      this.logger.warn({ err: error, channel: this.channel }, 'lost the LISTEN connection; polling until it is back');
    }
    // Notifications sent while no connection listened are gone: make every subscription re-read.
    this.wakeAll(undefined);
  }

  private wakeAll(payload: string | undefined): void {
    for (const wake of this.wakers) wake(payload);
  }
}
