import pino from 'pino';
import { createUnreachablePool } from '@tally/test-support';
import { ConfigError } from './config';
import { openEventStore } from './openEventStore';

jest.setTimeout(30_000);

const logger = pino({ level: 'silent' });

describe('openEventStore', () => {
  it('stops the start with a clear message when EventStoreDB cannot be reached', async () => {
    // Port 1 on loopback: nothing listens there. PostgreSQL is not needed for this store.
    const pool = createUnreachablePool('open-event-store');
    try {
      const opening = openEventStore({ eventStore: { kind: 'eventstoredb', connectionString: 'esdb://admin:secret@127.0.0.1:1?tls=false' } }, pool, logger);
      await expect(opening).rejects.toBeInstanceOf(ConfigError);
      await expect(opening).rejects.toThrow(/^TALLY_EVENTSTORE_CONNECTION_STRING: cannot use the EventStoreDB at esdb:\/\/\*\*\*@127\.0\.0\.1:1\?tls=false: /);
      await expect(opening).rejects.not.toThrow(/secret/);
    } finally {
      await pool.end();
    }
  });

  it('refuses a connection string the client cannot parse, naming the variable', async () => {
    const pool = createUnreachablePool('open-event-store');
    try {
      await expect(openEventStore({ eventStore: { kind: 'eventstoredb', connectionString: 'esdb://127.0.0.1:2113?tls=maybe' } }, pool, logger)).rejects.toThrow(
        /^TALLY_EVENTSTORE_CONNECTION_STRING/,
      );
    } finally {
      await pool.end();
    }
  });
});
