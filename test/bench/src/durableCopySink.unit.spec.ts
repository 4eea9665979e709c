import { usageCopyRows } from './durableCopySink';

describe('usageCopyRows', () => {
  it('writes one events-shaped COPY line per message, unique by partition and offset, with the value as escaped JSON', () => {
    const text = usageCopyRows(
      [
        { partition: 2, offset: '41', value: { customerId: 'c\t1', units: 5n } },
        { partition: 2, offset: '42', value: { note: 'back\\slash\nline' } },
      ],
      7,
      '2026-11-30T00:00:00.000Z',
    ).toString('utf8');
    expect(text.endsWith('\n')).toBe(true);
    expect(text.slice(0, -1).split('\n').map((line) => line.split('\t'))).toEqual([
      ['7', '00000002-0000-4000-8000-000000000029', 'usage-2', '41', 'UsageRecorded', '{"customerId":"c\\\\t1","units":"5"}', '{}', '2026-11-30T00:00:00.000Z'],
      ['8', '00000002-0000-4000-8000-00000000002a', 'usage-2', '42', 'UsageRecorded', '{"note":"back\\\\\\\\slash\\\\nline"}', '{}', '2026-11-30T00:00:00.000Z'],
    ]);
  });
});
