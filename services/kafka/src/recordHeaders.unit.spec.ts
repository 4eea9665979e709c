// kafkajs's own record encoder and decoder (infra/patches/kafkajs+2.2.4.patch): what every
// consumer's fetch turns a record's headers into.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Decoder = require('kafkajs/src/protocol/decoder') as new (buffer: Buffer) => { readVarIntBytes(): Buffer };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const decodeRecord = require('kafkajs/src/protocol/recordBatch/record/v0/decoder') as (
  decoder: unknown,
  context: { firstOffset: string; firstTimestamp: string; magicByte: number },
) => { headers: Record<string, Buffer | null | (Buffer | null)[]> };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const encodeRecord = require('kafkajs/src/protocol/recordBatch/record/v0') as (record: {
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Buffer | Buffer[]>;
}) => { buffer: Buffer };

/** The headers kafkajs reads back from a record written with `headers`. */
function roundTrip(headers: Record<string, Buffer | Buffer[]>) {
  const bytes = new Decoder(encodeRecord({ key: null, value: Buffer.from('{}'), headers }).buffer).readVarIntBytes();
  return decodeRecord(new Decoder(bytes), { firstOffset: '0', firstTimestamp: '0', magicByte: 2 }).headers;
}

describe("kafkajs's record headers", () => {
  it('reads 50,000 distinct header names, each with its value', () => {
    // Unpatched, kafkajs copied the whole object once per header: this record (about 400 KB)
    // held the event loop for minutes, a fetch that stopped heartbeats, /health and the API.
    const sent: Record<string, Buffer> = {};
    for (let i = 0; i < 50_000; i += 1) sent[`h${i}`] = Buffer.from(String(i));
    const read = roundTrip(sent);
    expect(Object.keys(read)).toEqual(Object.keys(sent));
    expect(Object.keys(sent).filter((name) => !Buffer.isBuffer(read[name]) || !read[name].equals(sent[name]!))).toEqual([]);
  });

  it('reads a name given more than once as the array of its values in order, and any name as data', () => {
    const sent: Record<string, Buffer | Buffer[]> = {
      single: Buffer.from('s'),
      repeated: [Buffer.from('1'), Buffer.from('2'), Buffer.from('3')],
      constructor: Buffer.from('c'),
      toString: [Buffer.from('t1'), Buffer.from('t2')],
    };
    Object.defineProperty(sent, '__proto__', { value: Buffer.from('p'), enumerable: true });
    const read = roundTrip(sent);
    expect(Object.keys(read)).toEqual(['single', 'repeated', 'constructor', 'toString', '__proto__']);
    expect(read.single).toEqual(Buffer.from('s'));
    expect(read.repeated).toEqual([Buffer.from('1'), Buffer.from('2'), Buffer.from('3')]);
    // Names that Object.prototype has are headers like any other, not [Object, value].
    expect(read.constructor).toEqual(Buffer.from('c'));
    expect(read.toString).toEqual([Buffer.from('t1'), Buffer.from('t2')]);
    expect(Object.getOwnPropertyDescriptor(read, '__proto__')?.value).toEqual(Buffer.from('p'));
    expect(Object.getPrototypeOf(read)).toBe(Object.prototype);
    // A header without a value (length -1, as a Java producer may send) is written and read as null.
    expect(roundTrip({ absent: null, some: [null, Buffer.from('v')] } as unknown as Record<string, Buffer>)).toEqual({ absent: null, some: [null, Buffer.from('v')] });
    // 12,000 values of one name, as a record of the same size could hold.
    expect(roundTrip({ '': Array.from({ length: 12_000 }, (_, i) => Buffer.from(String(i))) })['']).toHaveLength(12_000);
  });
});
