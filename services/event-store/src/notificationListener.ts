import pg from 'pg';
import type { Logger } from 'pino';
import { quoteIdentifier } from '@tally/postgres';

/**
 * One LISTEN connection per store, shared by its subscriptions: a notification wakes them all
 * and each re-reads from its own checkpoint. The connection is opened outside the pool (it is
 * held for as long as anything subscribes) with the pool's settings, on first use, and again
 * after it fails. Losing it only delays delivery: subscriptions also poll.
 */
export class NotificationListener {
  private client: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private readonly wakers = new Set<() => void>();
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly channel: string,
    private readonly logger: Logger,
  ) {
    quoteIdentifier(channel);
  }

  /** Registers a callback for every notification, and for the loss of the connection. */
  register(waker: () => void): () => void {
    this.wakers.add(waker);
    return () => {
      this.wakers.delete(waker);
    };
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
    client.on('notification', () => this.wakeAll());
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
    this.logger.debug({ channel: this.channel }, 'listening for appends');
  }

  private drop(client: pg.Client, error: Error | undefined): void {
    if (this.client !== client) return;
    this.client = undefined;
    if (error) void client.end().catch(() => undefined);
    if (!this.closed) {
      this.logger.warn({ err: error, channel: this.channel }, 'lost the LISTEN connection; polling until it is back');
    }
    // Notifications sent while no connection listened are gone: make every subscription re-read.
    this.wakeAll();
  }

  private wakeAll(): void {
    for (const wake of this.wakers) wake();
  }
}
