import fc from 'fast-check';
import { lastPositionBefore } from './rewindLedgerRelay';

/** A log as a store answers it: events at ascending (sparse) positions, recorded in that order. */
function logOf(events: readonly { position: bigint; at: number }[]) {
  let probes = 0;
  const firstAfter = async (position: bigint) => {
    probes += 1;
    const event = events.find((candidate) => candidate.position > position);
    return event === undefined ? undefined : { position: event.position, recordedAt: new Date(event.at) };
  };
  return { firstAfter, probes: () => probes, head: events.at(-1)?.position ?? 0n };
}

describe('lastPositionBefore', () => {
  const events = [
    { position: 3n, at: 1_000 },
    { position: 4n, at: 1_000 },
    { position: 10n, at: 2_000 },
    { position: 11n, at: 3_000 },
  ];

  it('given a time between events, finds the last event recorded before it', async () => {
    const log = logOf(events);
    expect(await lastPositionBefore(new Date(2_500), log.head, log.firstAfter)).toBe(10n);
    expect(await lastPositionBefore(new Date(2_000), log.head, log.firstAfter)).toBe(4n);
  });

  it('given a time at or before the first event, answers 0: the relay starts from the beginning', async () => {
    const log = logOf(events);
    expect(await lastPositionBefore(new Date(1_000), log.head, log.firstAfter)).toBe(0n);
    expect(await lastPositionBefore(new Date(0), logOf([]).head, logOf([]).firstAfter)).toBe(0n);
  });

  it('given a time after every event, answers the last one: nothing is published again', async () => {
    const log = logOf(events);
    expect(await lastPositionBefore(new Date(9_000), log.head, log.firstAfter)).toBe(11n);
  });

  it('always finds the last event before the time, in about log2(head) probes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 1_000 }), fc.integer({ min: 0, max: 5 })), { maxLength: 60 }),
        fc.integer({ min: 0, max: 400 }),
        async (steps, time) => {
          // Positions rise by 1..1000, times by 0..5 (ties included).
          let position = 0n;
          let at = 0;
          const log = steps.map(([gap, tick]) => {
            position += BigInt(gap);
            at += tick;
            return { position, at };
          });
          const { firstAfter, probes, head } = logOf(log);
          const expected = log.filter((event) => event.at < time).at(-1)?.position ?? 0n;
          expect(await lastPositionBefore(new Date(time), head, firstAfter)).toBe(expected);
          expect(probes()).toBeLessThanOrEqual(Math.ceil(Math.log2(Number(head) + 2)) + 1);
        },
      ),
    );
  });
});
