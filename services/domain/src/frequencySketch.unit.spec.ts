import fc from 'fast-check';
import { FrequencySketch } from './frequencySketch';

describe('FrequencySketch', () => {
  it('never estimates fewer requests than a key had, up to its counters\' 15', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ minLength: 1, maxLength: 40 }), fc.integer({ min: 0, max: 20 }), { maxKeys: 60 }), (counts) => {
        // Wide enough that ten times its width is never counted here: no halving.
        const sketch = new FrequencySketch(1024);
        for (const [key, count] of Object.entries(counts)) for (let i = 0; i < count; i += 1) sketch.increment(key);
        for (const [key, count] of Object.entries(counts)) expect(sketch.frequency(key)).toBeGreaterThanOrEqual(Math.min(count, 15));
      }),
    );
  });

  it('counts keys apart, and a key never asked for as none', () => {
    const sketch = new FrequencySketch(1000);
    for (let i = 0; i < 3; i += 1) sketch.increment('balance-a');
    sketch.increment('balance-b');
    expect([sketch.frequency('balance-a'), sketch.frequency('balance-b'), sketch.frequency('balance-c')]).toEqual([3, 1, 0]);
  });

  it('stops counting at 15', () => {
    const sketch = new FrequencySketch(100);
    for (let i = 0; i < 40; i += 1) sketch.increment('hot');
    expect(sketch.frequency('hot')).toBe(15);
  });

  it('halves every counter once it has counted ten times its width, so popularity that is not renewed fades', () => {
    // 16 counters a row: halved at the 160th count that raised one.
    const sketch = new FrequencySketch(1);
    for (let i = 0; i < 15; i += 1) sketch.increment('old');
    expect(sketch.frequency('old')).toBe(15);
    for (let key = 0; key < 10; key += 1) for (let i = 0; i < 15; i += 1) sketch.increment(`new-${key}`);
    expect(sketch.frequency('old')).toBeLessThanOrEqual(8);
  });

  it('refuses a size that is not a positive integer', () => {
    expect(() => new FrequencySketch(0)).toThrow(/positive/);
    expect(() => new FrequencySketch(1.5)).toThrow(/positive/);
  });
});
