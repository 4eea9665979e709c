import { BenchUsageError, parseBenchOptions, PHASES } from './benchOptions';

describe('parseBenchOptions', () => {
  it('defaults to every measurement at the sizes of issue 5', () => {
    const options = parseBenchOptions([]);
    expect(options).toMatchObject({ events: 1_000_000, customers: 10_000, rate: 2000, durationSeconds: 60, keep: false, profile: false });
    expect([...options.only]).toEqual([...PHASES]);
  });

  it('takes sizes, a subset of the measurements and the flags', () => {
    const options = parseBenchOptions(['--events', '5000', '--rate', '100', '--duration', '5', '--only', 'metering, replay', '--keep', '--profile']);
    expect(options).toMatchObject({ events: 5000, rate: 100, durationSeconds: 5, keep: true, profile: true });
    expect([...options.only]).toEqual(['metering', 'replay']);
  });

  it.each([[['--events', '0']], [['--events']], [['--rate', '1.5']], [['--only', 'metering,speed']], [['--fast']]])('refuses %j', (argv) => {
    expect(() => parseBenchOptions(argv)).toThrow(BenchUsageError);
  });
});
