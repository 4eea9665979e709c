import { consumerChunks, formatStages, freshnessStages, projectedBatches } from './freshnessStages';

const chunkLine = (partition: number, first: number, last: number, time: number, meteredMs: number, durationMs: number) =>
  JSON.stringify({ level: 20, time, msg: 'usage batch metered', partition, firstOffset: String(first), lastOffset: String(last), meteredMs, durationMs });
const batchLine = (first: number, last: number, time: number, preparedMs: number, durationMs: number) =>
  JSON.stringify({ level: 20, time, msg: 'batch projected', first: String(first), last: String(last), preparedMs, durationMs });

describe('freshnessStages', () => {
  it('splits an event into the stages of the chunk and the batch that carried it', () => {
    const lines = [chunkLine(2, 10, 19, 1100, 50, 60), chunkLine(3, 10, 19, 5000, 1, 2), batchLine(100, 120, 1130, 5, 12), 'not json "msg":"batch projected"'];
    const breakdown = freshnessStages(
      [{ publishedAt: 1000, partition: 2, offset: 15n, deliveredAt: 1010, position: 110n, recordedAt: 1070, seenAt: 1133 }],
      consumerChunks(lines),
      projectedBatches(lines),
    );
    expect(breakdown.events).toBe(1);
    const p50 = Object.fromEntries(Object.entries(breakdown.stages).map(([name, summary]) => [name, summary!.p50]));
    // Chunk 1040 → 1090 metered → 1100 committed; batch 1118 → 1123 folded → 1130 written.
    expect(p50).toEqual({
      'kafka floor': 10,
      'to consumer': 40,
      meter: 30,
      append: 20,
      'projector pickup': 28,
      'projector fold': 5,
      'projector write': 7,
      'bench poll': 3,
      'offset hand-over': 10,
      total: 133,
      // 10 to the floor, then 1040 → 1133.
      'floor + from chunk': 103,
    });
  });

  it('leaves out an event whose chunk or batch was not logged', () => {
    const lines = [chunkLine(2, 10, 19, 1100, 50, 60)];
    const event = { publishedAt: 1000, partition: 2, offset: 15n, deliveredAt: 1010, position: 110n, recordedAt: 1070, seenAt: 1133 };
    expect(freshnessStages([event, { ...event, offset: 20n }], consumerChunks(lines), projectedBatches([batchLine(100, 109, 1130, 5, 12)])).events).toBe(0);
  });

  it('says what Tally would add over the floor with no wait for the next fetch', () => {
    // Two events: floors 10 and 30; chunks begin at 1040 and 2040; seen at 1133 and 2050.
    const lines = [chunkLine(2, 10, 19, 1100, 50, 60), chunkLine(2, 20, 29, 2100, 5, 60), batchLine(100, 120, 1130, 5, 12)];
    const events = [
      { publishedAt: 1000, partition: 2, offset: 15n, deliveredAt: 1010, position: 110n, recordedAt: 1070, seenAt: 1133 },
      { publishedAt: 2000, partition: 2, offset: 25n, deliveredAt: 2030, position: 111n, recordedAt: 2041, seenAt: 2050 },
    ];
    const breakdown = freshnessStages(events, consumerChunks(lines), projectedBatches(lines));
    // Bounds 10 + 93 and 30 + 10; percentiles by nearest rank, each side on its own, as the addition is.
    expect(breakdown.stages['floor + from chunk']).toMatchObject({ p50: 40, p99: 103 });
    expect(formatStages(breakdown).pop()).toBe("with no wait for the consumer's next fetch Tally would still add +73.0 ms at p99 over the floor (+30.0 at p50)");
  });
});
