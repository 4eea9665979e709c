import { BenchUsageError, parseBenchOptions, PHASES } from './benchOptions';

describe('parseBenchOptions', () => {
  it('defaults to every measurement at the sizes of issue 5', () => {
    const options = parseBenchOptions([]);
    expect(options).toMatchObject({ events: 1_000_000, customers: 10_000, rate: 2000, durationSeconds: 60, keep: false, profile: false, promotedAllocations: false, oneBalance: false, pgStatements: false });
    expect([...options.only]).toEqual([...PHASES]);
  });

  it('takes sizes, a subset of the measurements and the flags', () => {
    const options = parseBenchOptions(['--events', '5000', '--rate', '100', '--duration', '5', '--only', 'metering, replay', '--keep', '--profile', '--promoted-allocations', '--pg-statements']);
    expect(options).toMatchObject({ events: 5000, rate: 100, durationSeconds: 5, keep: true, profile: true, promotedAllocations: true, pgStatements: true });
    expect([...options.only]).toEqual(['metering', 'replay']);
  });

  it('takes the old one-balance metering workload and the consumer\'s V8 limits', () => {
    const options = parseBenchOptions(['--one-balance', '--consumer-max-old-space', '176', '--consumer-max-semi-space', '2']);
    expect(options).toMatchObject({ oneBalance: true, consumerMaxOldSpaceMib: 176, consumerMaxSemiSpaceMib: 2 });
  });

  it('takes the writes measurement\'s sizes and another checkout\'s main job', () => {
    expect(parseBenchOptions([])).toMatchObject({ history: 1_000_000, topUps: 100, topUpTimeoutSeconds: 120 });
    expect(parseBenchOptions([]).tallyMain).toBeUndefined();
    const options = parseBenchOptions(['--only', 'writes', '--history', '1000', '--top-ups', '5', '--top-up-timeout', '30', '--tally-main', '/tmp/base/main.js']);
    expect(options).toMatchObject({ history: 1000, topUps: 5, topUpTimeoutSeconds: 30, tallyMain: '/tmp/base/main.js' });
  });

  it('takes the growth run only when asked, at 1,000 and 100,000 customers or the sizes given', () => {
    expect(parseBenchOptions([]).growth).toBeUndefined();
    expect(parseBenchOptions(['--growth']).growth).toEqual({ small: 1000, large: 100_000, history: 0 });
    expect(parseBenchOptions(['--growth-customers', '500, 20000']).growth).toEqual({ small: 500, large: 20_000, history: 0 });
    expect(parseBenchOptions(['--growth-customers', '500,20000', '--growth']).growth).toEqual({ small: 500, large: 20_000, history: 0 });
    expect(parseBenchOptions(['--growth-history', '10000000']).growth).toEqual({ small: 1000, large: 100_000, history: 10_000_000 });
    expect(parseBenchOptions(['--growth-customers', '500,20000', '--growth-history', '1000']).growth).toEqual({ small: 500, large: 20_000, history: 1000 });
  });

  it.each([[['--growth-customers']], [['--growth-customers', '1000']], [['--growth-customers', '2000,1000']], [['--growth-customers', '1000,1000']], [['--growth-customers', '0,10']], [['--growth-customers', '1,2,3']]])('refuses %j', (argv) => {
    expect(() => parseBenchOptions(argv)).toThrow(BenchUsageError);
  });

  it.each([[['--tally-main']], [['--top-ups', '0']], [['--events', '0']], [['--events']], [['--rate', '1.5']], [['--only', 'metering,speed']], [['--fast']]])('refuses %j', (argv) => {
    expect(() => parseBenchOptions(argv)).toThrow(BenchUsageError);
  });
});
