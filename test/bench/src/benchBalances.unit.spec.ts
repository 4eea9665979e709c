import { parsePositiveCredits } from '@tally/domain';
import { warnedOpening } from './benchBalances';

describe('warnedOpening', () => {
  it.each([
    [200_000, 100_000],
    [1_000_000, 100_000],
    [1_000_000, 10_000],
    [150, 100],
  ])('opens the second balance so that %i events over %i customers cross its threshold half-way, once', (events, customers) => {
    const opening = warnedOpening(events, customers);
    const threshold = parsePositiveCredits(opening.lowBalanceThreshold!);
    const starting = parsePositiveCredits(opening.startingBalance);
    // The customer with the fewest events (round-robin) gets floor(events / customers) of 1 credit each.
    const fewest = Math.floor(events / customers);
    const oneCredit = parsePositiveCredits('1');
    expect(starting - BigInt(fewest) * oneCredit).toBeLessThan(threshold);
    expect(starting - BigInt(Math.floor(fewest / 2)) * oneCredit).toBeGreaterThanOrEqual(threshold);
  });
});
