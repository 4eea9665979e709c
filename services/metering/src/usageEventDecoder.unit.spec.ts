import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { InvalidUsageEventError } from '@tally/domain';
import { usageEventAvroSchema } from '@tally/schemas';
import { avroLong, avroString } from './avroBytes.spec';
import { SchemaRegistryUnavailableError, UndecodableUsageEventError, UnknownSchemaIdError } from './meteringErrors';
import { createUsageEventDecoder } from './usageEventDecoder';

const USAGE_SCHEMA_ID = 7;
const FAILING_SCHEMA_ID = 500;
const HANGING_SCHEMA_ID = 408;
const BARE_404_SCHEMA_ID = 404;
/** Another version of the usage schema (its record has the same name), as schema evolution registers. */
const SAME_NAME_SCHEMA_ID = 8;

/** A stand-in for the registry's Confluent API: only the one endpoint decoding uses. */
async function startRegistryStub(): Promise<{ url: string; requests: string[]; server: Server }> {
  const requests: string[] = [];
  const server = createServer((request, response) => {
    requests.push(request.url ?? '');
    const id = Number(/\/schemas\/ids\/(-?\d+)/.exec(request.url ?? '')?.[1]);
    if (id === HANGING_SCHEMA_ID) return; // never answers
    response.setHeader('content-type', 'application/vnd.schemaregistry.v1+json');
    if (id === USAGE_SCHEMA_ID || id === SAME_NAME_SCHEMA_ID) {
      response.end(JSON.stringify({ schema: JSON.stringify(usageEventAvroSchema) }));
    } else if (id === BARE_404_SCHEMA_ID) {
      // What a path the registry does not serve answers (Apicurio without /apis/ccompat/v7).
      response.statusCode = 404;
      response.end(JSON.stringify({ title: 'RESTEASY003210: Could not find resource for full path', status: 404 }));
    } else if (id === FAILING_SCHEMA_ID) {
      response.statusCode = 500;
      response.end(JSON.stringify({ error_code: 50001, message: 'storage unavailable' }));
    } else {
      response.statusCode = 404;
      response.end(JSON.stringify({ error_code: 40403, message: 'Schema not found' }));
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, server };
}

const record = {
  id: 'u-1',
  customerId: 'alice',
  event: 'api_call',
  timestamp: Date.UTC(2026, 2, 1),
  properties: { tier: { string: 'premium' }, count: { long: 3 }, ratio: { double: 0.5 }, on: { boolean: true }, none: null },
};

describe('createUsageEventDecoder', () => {
  let stub: Awaited<ReturnType<typeof startRegistryStub>>;
  let avro: Buffer;

  beforeAll(async () => {
    stub = await startRegistryStub();
    avro = await new SchemaRegistry({ host: stub.url }).encode(USAGE_SCHEMA_ID, record);
  });

  afterAll(async () => {
    stub.server.closeAllConnections();
    stub.server.close();
    await once(stub.server, 'close');
  });

  const frame = (schemaId: number, body: Buffer) => {
    const header = Buffer.alloc(5);
    header.writeInt32BE(schemaId, 1);
    return Buffer.concat([header, body]);
  };

  it('decodes Confluent-framed Avro, fetching each writer schema once', async () => {
    const decoder = createUsageEventDecoder({ registryUrl: stub.url });
    const before = stub.requests.length;
    const first = await decoder.decode(avro);
    await decoder.decode(avro);
    expect(first).toEqual({
      id: 'u-1',
      customerId: 'alice',
      event: 'api_call',
      timestamp: Date.UTC(2026, 2, 1),
      properties: { tier: 'premium', count: 3, ratio: 0.5, on: true, none: null },
    });
    expect(stub.requests.length - before).toBe(1);
  });

  it('decodes JSON', async () => {
    const decoder = createUsageEventDecoder({ registryUrl: stub.url });
    const json = Buffer.from(JSON.stringify({ ...record, timestamp: '2026-03-01T00:00:00Z', properties: { count: 3 } }));
    await expect(decoder.decode(json)).resolves.toMatchObject({ id: 'u-1', timestamp: Date.UTC(2026, 2, 1), properties: { count: 3 } });
  });

  it.each([
    ['an empty value', null],
    ['a zero-length value', Buffer.alloc(0)],
    ['garbage bytes', Buffer.from([0xde, 0xad, 0xbe, 0xef])],
    ['a frame shorter than its header', Buffer.from([0, 0, 0])],
    ['broken JSON', Buffer.from('{"id": "u-1",')],
  ])('refuses %s as undecodable', async (_name, value) => {
    const decoder = createUsageEventDecoder({ registryUrl: stub.url });
    await expect(decoder.decode(value)).rejects.toBeInstanceOf(UndecodableUsageEventError);
  });

  it('refuses JSON that is not valid UTF-8, rather than metering ids that differ as one', async () => {
    // Read with replacement characters, evt-<FF>, evt-<FE> and evt-<80> were all "evt-\uFFFD":
    // one charge for three usage events.
    const decoder = createUsageEventDecoder({ registryUrl: stub.url });
    for (const byte of [0xff, 0xfe, 0x80]) {
      const value = Buffer.concat([Buffer.from('{"id":"evt-'), Buffer.from([byte]), Buffer.from('","customerId":"acme","event":"api_call","timestamp":5}')]);
      const error = await decoder.decode(value).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(UndecodableUsageEventError);
      expect(error).toMatchObject({ retriable: false, message: expect.stringMatching(/not valid UTF-8/) });
      await expect(decoder.identify(value)).resolves.toBeNull();
    }
  });

  it('refuses a binary-mode CloudEvent whose attributes or data are not valid UTF-8', async () => {
    const decoder = createUsageEventDecoder({ registryUrl: stub.url });
    const headers = (id: Buffer, contentType = Buffer.from('application/json')) => ({
      ce_specversion: Buffer.from('1.0'),
      ce_id: id,
      ce_source: Buffer.from('/x'),
      ce_type: Buffer.from('api_call'),
      ce_subject: Buffer.from('acme'),
      ce_time: Buffer.from('2026-03-01T12:00:00Z'),
      'content-type': contentType,
    });
    const refusals = [
      () => decoder.decode(Buffer.from('{}'), headers(Buffer.from([0x63, 0x2d, 0xff]))),
      () => decoder.decode(Buffer.from('{}'), headers(Buffer.from('c-1'), Buffer.from([0x61, 0xc3]))),
      () => decoder.decode(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xfe, 0x22, 0x7d]), headers(Buffer.from('c-1'))),
    ];
    for (const refusal of refusals) {
      const error = await refusal().catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(UndecodableUsageEventError);
      expect(error).toMatchObject({ retriable: false, message: expect.stringMatching(/not valid UTF-8/) });
    }
    await expect(decoder.decode(Buffer.from('{}'), headers(Buffer.from('c-1')))).resolves.toMatchObject({ id: 'ce:2:/x:c-1' });
  });

  it('decodes an Avro long property beyond 2^53 as its decimal string, and refuses such a timestamp', async () => {
    // A property no rule reads must never send the event to the dead letters, whatever its value.
    const decoder = createUsageEventDecoder({ registryUrl: stub.url });
    const body = (timestamp: bigint, properties: [string, bigint][]) =>
      Buffer.concat([
        avroString('u-big'),
        avroString('alice'),
        avroString('api_call'),
        avroLong(timestamp),
        ...(properties.length > 0 ? [avroLong(BigInt(properties.length))] : []),
        ...properties.flatMap(([name, value]) => [avroString(name), avroLong(2n), avroLong(value)]), // branch 2: long
        avroLong(0n),
      ]);
    const march1 = BigInt(Date.UTC(2026, 2, 1));
    const big = body(march1, [['trace_ns', 2n ** 60n], ['small', 12_345n], ['negative', -(2n ** 62n)]]);
    await expect(decoder.decode(frame(USAGE_SCHEMA_ID, big))).resolves.toEqual({
      id: 'u-big',
      customerId: 'alice',
      event: 'api_call',
      timestamp: Date.UTC(2026, 2, 1),
      properties: { trace_ns: '1152921504606846976', small: 12_345, negative: '-4611686018427387904' },
    });
    // Another schema id of the same record name: each writer schema is a type of its own.
    await expect(decoder.decode(frame(SAME_NAME_SCHEMA_ID, big))).resolves.toMatchObject({ id: 'u-big' });
    const hugeTimestamp = await decoder.decode(frame(USAGE_SCHEMA_ID, body(2n ** 60n, []))).catch((caught: unknown) => caught);
    expect(hugeTimestamp).toBeInstanceOf(InvalidUsageEventError);
    expect(hugeTimestamp).toMatchObject({ message: expect.stringMatching(/timestamp/) });
  });

  it('refuses Avro that does not match its writer schema', async () => {
    const decoder = createUsageEventDecoder({ registryUrl: stub.url });
    await expect(decoder.decode(avro.subarray(0, avro.length - 3))).rejects.toBeInstanceOf(UndecodableUsageEventError);
    await expect(decoder.decode(Buffer.concat([avro, Buffer.from([1, 2])]))).rejects.toThrow(/does not match schema 7/);
  });

  it("refuses Avro whose id takes the prefix of CloudEvents' ids, as invalid usage", async () => {
    const decoder = createUsageEventDecoder({ registryUrl: stub.url });
    const taken = await new SchemaRegistry({ host: stub.url }).encode(USAGE_SCHEMA_ID, { ...record, id: 'ce:1:a:b' });
    await expect(decoder.decode(taken)).rejects.toBeInstanceOf(InvalidUsageEventError);
  });

  it('names an unknown schema id, not retriable', async () => {
    const decoder = createUsageEventDecoder({ registryUrl: stub.url });
    const error = await decoder.decode(frame(4242, avro.subarray(5))).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(UnknownSchemaIdError);
    expect(error).toMatchObject({ schemaId: 4242, retriable: false, code: 'unknown_schema_id' });
  });

  it('reports a 404 without Confluent\'s error code 40403 as the registry unavailable, retriable, not as an unknown id', async () => {
    // Read as "unknown schema id", a registry URL missing its API root dead-letters every Avro event.
    const decoder = createUsageEventDecoder({ registryUrl: stub.url });
    const error = await decoder.decode(frame(BARE_404_SCHEMA_ID, avro.subarray(5))).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SchemaRegistryUnavailableError);
    expect(error).toMatchObject({ retriable: true, message: expect.stringMatching(/404 .*without .*40403.*\/apis\/ccompat\/v7/) });
  });

  it('names the usage event a message holds, however it failed, and nothing for bytes that name none', async () => {
    const decoder = createUsageEventDecoder({ registryUrl: stub.url });
    const invalid = Buffer.from(JSON.stringify({ id: 'u-1', customerId: 'alice', event: 'api_call', timestamp: 'yesterday' }));
    await expect(decoder.decode(invalid)).rejects.toBeInstanceOf(InvalidUsageEventError);
    await expect(decoder.identify(invalid)).resolves.toEqual({ customerId: 'alice', usageEventId: 'u-1' });
    await expect(decoder.identify(avro)).resolves.toEqual({ customerId: 'alice', usageEventId: 'u-1' });
    // A binary-mode CloudEvent is named by its headers, whatever its data holds.
    const headers = { ce_specversion: '1.0', ce_id: 'c-7', ce_source: '/checkout', ce_type: 'render', ce_subject: 'alice' };
    await expect(decoder.identify(Buffer.from('[not an object]'), headers)).resolves.toEqual({ customerId: 'alice', usageEventId: 'ce:9:/checkout:c-7' });
    for (const value of [null, Buffer.alloc(0), Buffer.from([0xde, 0xad]), Buffer.from('{"id": "u-1",'), frame(4242, avro.subarray(5)), frame(FAILING_SCHEMA_ID, avro.subarray(5))]) {
      await expect(decoder.identify(value)).resolves.toBeNull();
    }
  });

  it('refuses a well-formed event that is not a valid usage event', async () => {
    const decoder = createUsageEventDecoder({ registryUrl: stub.url });
    const missing = Buffer.from(JSON.stringify({ id: 'u-1', event: 'api_call', timestamp: 1 }));
    const wrongType = Buffer.from(JSON.stringify({ ...record, customerId: 42 }));
    await expect(decoder.decode(missing)).rejects.toBeInstanceOf(InvalidUsageEventError);
    await expect(decoder.decode(wrongType)).rejects.toThrow(/customerId/);
  });

  it('reports a registry that fails, hangs or cannot be reached as retriable', async () => {
    const decoder = createUsageEventDecoder({ registryUrl: stub.url, requestTimeoutMs: 200 });
    const failing = await decoder.decode(frame(FAILING_SCHEMA_ID, avro.subarray(5))).catch((caught: unknown) => caught);
    expect(failing).toBeInstanceOf(SchemaRegistryUnavailableError);
    expect(failing).toMatchObject({ retriable: true });
    await expect(decoder.decode(frame(HANGING_SCHEMA_ID, avro.subarray(5)))).rejects.toBeInstanceOf(SchemaRegistryUnavailableError);

    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const { port } = closed.address() as AddressInfo;
    closed.close();
    await once(closed, 'close');
    const unreachable = createUsageEventDecoder({ registryUrl: `http://127.0.0.1:${port}` });
    await expect(unreachable.decode(avro)).rejects.toBeInstanceOf(SchemaRegistryUnavailableError);
  });
});
