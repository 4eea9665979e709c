import { capturedLog } from '@tally/test-support';
import { createOutageLog } from './outageLog';

describe('createOutageLog', () => {
  it('tells an outage once when it starts and once when it ends, however many calls fail in between', () => {
    const { logger, lines } = capturedLog('debug');
    const outage = createOutageLog(logger);
    outage.succeeded({}, 'back');
    expect(outage.failing).toBe(false);
    for (let attempt = 1; attempt <= 5; attempt += 1) outage.failed({ attempt }, 'down');
    expect(outage.failing).toBe(true);
    outage.succeeded({}, 'back');
    outage.succeeded({}, 'back');
    outage.failed({ attempt: 6 }, 'down');
    const told = lines.map((line) => JSON.parse(line) as { level: number; msg: string; attempt?: number });
    expect(told.map(({ level, msg, attempt }) => [level, msg, attempt])).toEqual([
      [40, 'down', 1],
      [30, 'back', undefined],
      [40, 'down', 6],
    ]);
  });
});
