import { copyRowsOf } from './copyRows';

describe('copyRowsOf', () => {
  it('numbers positions and revisions as the append would, and escapes what COPY text reserves', () => {
    const { text, rows } = copyRowsOf(
      [
        {
          streamId: 'creditBalance-a',
          expectedRevision: 4n,
          events: [
            { id: '00000000-0000-5000-8000-000000000001', type: 'CreditConsumed', data: { reason: 'tab\there, slash\\ and\nline' } },
            { id: '00000000-0000-5000-8000-000000000002', type: 'LowBalanceWarned', data: {}, metadata: { balanceId: 'a' } },
          ],
        },
        { streamId: 'creditBalance-b', expectedRevision: 'no_stream', events: [{ id: '00000000-0000-5000-8000-000000000003', type: 'CreditBalanceOpened', data: {} }] },
      ],
      10,
      '2026-11-25T00:00:00.000Z',
    );
    expect(rows).toBe(3);
    expect(text.toString('utf8').split('\n')).toEqual([
      '10\t00000000-0000-5000-8000-000000000001\tcreditBalance-a\t5\tCreditConsumed\t{"reason":"tab\\\\there, slash\\\\\\\\ and\\\\nline"}\t{}\t2026-11-25T00:00:00.000Z',
      '11\t00000000-0000-5000-8000-000000000002\tcreditBalance-a\t6\tLowBalanceWarned\t{}\t{"balanceId":"a"}\t2026-11-25T00:00:00.000Z',
      '12\t00000000-0000-5000-8000-000000000003\tcreditBalance-b\t0\tCreditBalanceOpened\t{}\t{}\t2026-11-25T00:00:00.000Z',
      '',
    ]);
  });
});
