import type { EventStore } from '@tally/event-store';
import type { Pool } from 'pg';
import pino from 'pino';
import { createLedgerRelay, type LedgerRelayOptions } from './ledgerRelay';

/** Nothing here connects: createLedgerRelay only builds its clients. */
const options = (registryUrl: string): LedgerRelayOptions => ({
  eventStore: {} as EventStore,
  pool: {} as Pool,
  checkpointName: 'relay-options',
  kafka: { brokers: ['127.0.0.1:9092'], clientId: 'tally-relay' },
  topic: 'ledger',
  registryUrl,
  logger: pino({ level: 'silent' }),
});

describe('the ledger relay’s options', () => {
  it('take an http(s) registry URL', () => {
    expect(() => createLedgerRelay(options('https://registry.internal:8443/apis/ccompat/v7'))).not.toThrow();
  });

  // Taken, either would leave the registry unreachable for ever: the relay's lag grows, warned about only.
  it.each([
    ['not http(s)', 'localhost:8081', /^registryUrl: an http or https URL$/],
    ['with credentials, never echoed', 'http://tally:s3cret@127.0.0.1:8081/', /^registryUrl: no user:password@ in the URL; give them in registryAuth$/],
  ])('refuse a registry URL %s', (_name, registryUrl, expected) => {
    expect(() => createLedgerRelay(options(registryUrl))).toThrow(expected);
  });
});
