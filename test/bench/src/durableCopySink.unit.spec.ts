import { durableCopySink, usageCopyRows, type DecodedMessage } from './durableCopySink';

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

describe('durableCopySink', () => {
  it("writes a batch in COPYs of at most the consumer's chunk size, one transaction each, positions running on", async () => {
    const written: string[][] = [];
    const sink = durableCopySink(async (rows) => {
      written.push(rows.toString('utf8').slice(0, -1).split('\n'));
    }, 1000);
    const batch = (count: number, from: number): DecodedMessage[] =>
      Array.from({ length: count }, (_, index) => ({ partition: 0, offset: String(from + index), value: { n: from + index } }));
    await sink(batch(2500, 0));
    await sink(batch(10, 2500));
    expect(written.map((lines) => lines.length)).toEqual([1000, 1000, 500, 10]);
    expect(written.map((lines) => lines[0]!.split('\t')[0])).toEqual(['1', '1001', '2001', '2501']);
  });
});
