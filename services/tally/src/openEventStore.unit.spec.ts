import pino from 'pino';
import { createUnreachablePool } from '@tally/test-support';
import { ConfigError } from './config';
import { openEventStore, redactedConnectionString } from './openEventStore';

describe('redactedConnectionString', () => {
  it.each([
    ['esdb+discover://admin:changeit@cluster.example:2113?tls=true', 'esdb+discover://***@cluster.example:2113?tls=true'],
    ['esdb://127.0.0.1:2113?tls=false', 'esdb://127.0.0.1:2113?tls=false'],
    // Unencoded, as the client takes them: a password with /, ? or @.
    ['esdb://admin:pa/ss@db.example:2113?tls=true', 'esdb://***@db.example:2113?tls=true'],
    ['esdb://admin:pa?ss@db.example:2113?tls=true', 'esdb://***@db.example:2113?tls=true'],
    ['esdb://admin:p@ss@db.example:2113?tls=true', 'esdb://***@db.example:2113?tls=true'],
    ['esdb://admin:p/a?s@s=w@db.example:2113', 'esdb://***@db.example:2113'],
    // An @ in the query hides the host: more than needed, never less.
    ['esdb://db.example?connectionName=ops@team', 'esdb://***@team'],
    ['esdb://admin:p?tls=true@db.example:2113', 'esdb://***@db.example:2113'],
    ['esdb://us@er:secret@db-1:2113,db-2:2113/?tls=true', 'esdb://***@db-1:2113,db-2:2113/?tls=true'],
    ['esdb://admin:se:cret@db.example', 'esdb://***@db.example'],
    // A user without a password.
    ['esdb://admin@db.example:2113', 'esdb://***@db.example:2113'],
    ['ESDB://admin:secret@db.example', 'ESDB://***@db.example'],
  ])('%s shows as %s', (connectionString, shown) => {
    expect(redactedConnectionString(connectionString)).toBe(shown);
  });

  it('never shows any part of the password, whatever characters it holds', () => {
    const password = 'S3/cr?e@t=x&y#z';
    for (const host of ['db.example:2113', 'db-1:2113,db-2:2113']) {
      for (const query of ['', '?tls=false', '?tls=true&connectionName=ops']) {
        const shown = redactedConnectionString(`esdb://admin:${password}@${host}${query}`);
        expect(shown).toBe(`esdb://***@${host}${query}`);
      }
    }
  });
});

describe('openEventStore', () => {
  it("refuses a connection string the client cannot parse without quoting the client's view of it", async () => {
    // Read as user `admin`, password `p`, host `ss` on port `word@db.example`: the client's error quotes `word@…`, part of the password meant.
    // Not used by this store; never connected.
    const pool = createUnreachablePool('open-event-store');
    try {
      const opening = openEventStore({ eventStore: { kind: 'eventstoredb', connectionString: 'esdb://admin:p@ss:word@db.example' } }, pool, pino({ level: 'silent' }));
      await expect(opening).rejects.toBeInstanceOf(ConfigError);
      await expect(opening).rejects.toThrow(/^TALLY_EVENTSTORE_CONNECTION_STRING \(esdb:\/\/\*\*\*@db\.example\): .*Unexpected text at position \d+, expected port number\.$/);
      await expect(opening).rejects.not.toThrow(/word/);
    } finally {
      await pool.end();
    }
  });
});
