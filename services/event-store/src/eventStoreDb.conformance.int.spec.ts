import { spawnSync } from 'node:child_process';
import pino from 'pino';
import { stackConfig } from '@tally/test-support';
import { createEventStoreDbEventStore } from './createEventStoreDbEventStore';
import { describeEventStoreConformance } from './testing/eventStoreConformance';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const connectionString = stackConfig.eventStoreDbConnectionString;

/** The first host:port of an EventStoreDB connection string (esdb://[user:password@]host[:port][,...][?...]). */
function firstEndpoint(text: string): { host: string; port: number } | undefined {
  const match = /^[a-z+]+:\/\/(?:[^@/]*@)?([^,/?]+)/i.exec(text);
  if (match === null) return undefined;
  const [host, port] = match[1]!.split(':');
  return { host: host!, port: Number(port ?? 2113) };
}

/**
 * Whether anything accepts connections there, decided before jest collects the tests (it cannot
 * add or skip tests later): one TCP connect in a child process, at most 3 s.
 */
function reachable(endpoint: { host: string; port: number }): boolean {
  const probe = `require('node:net').connect(${endpoint.port}, ${JSON.stringify(endpoint.host)}).on('connect', () => process.exit(0)).on('error', () => process.exit(1))`;
  return spawnSync(process.execPath, ['-e', probe], { timeout: 3_000 }).status === 0;
}

const endpoint = firstEndpoint(connectionString);
if (endpoint !== undefined && reachable(endpoint)) {
  describeEventStoreConformance('EventStoreDB', {
    // A shared server: other writers' events may be in $all; positions are log offsets, with gaps.
    isolated: false,
    contiguousPositions: false,
    async open() {
      const store = createEventStoreDbEventStore({ connectionString, logger, pollIntervalMs: 1000 });
      return { store, close: () => store.close() };
    },
    async unreachable() {
      // Port 1 on loopback: nothing listens there.
      const store = createEventStoreDbEventStore({ connectionString: 'esdb://127.0.0.1:1?tls=false', logger });
      return { store, close: () => store.close() };
    },
  });
} else {
  // Never a silent pass: the line says that this run did not happen, and why. Written to the
  // process's stdout, not console.log: jest shows no console output of a suite whose tests were
  // all skipped.
  const where = endpoint === undefined ? `an unreadable connection string` : `${endpoint.host}:${endpoint.port}`;
  process.stdout.write(
    `SKIPPED: EventStoreDB conformance suite: no EventStoreDB server reachable at ${where} (TALLY_EVENTSTORE_CONNECTION_STRING); start one (docker compose --profile eventstoredb up -d eventstoredb) to run it; README, "EventStoreDB as the event store"\n`,
  );
  describe('event store conformance: EventStoreDB', () => {
    it.skip(`runs against a server at ${where} (none reachable)`, () => undefined);
  });
}
