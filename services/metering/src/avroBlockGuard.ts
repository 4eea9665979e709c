import { isUtf8 } from 'node:buffer';
import type { Type } from 'avsc';

/**
 * The most array or map items, in all, that a body may hold when they can be encoded in 0 bytes
 * (nulls, records of nulls): no byte count bounds those, so a limit must.
 */
export const MAX_ZERO_BYTE_ITEMS = 100_000;

/** Why an Avro body is refused before decoding; the message names the offending block. */
export class AvroBlockBombError extends Error {
  override readonly name = 'AvroBlockBombError';
}

/** An Avro string (a field, a map key) whose bytes are not valid UTF-8. */
export class AvroInvalidUtf8Error extends Error {
  override readonly name = 'AvroInvalidUtf8Error';
}

/** The parts of an avsc Type this walk reads (avsc types the schema tree loosely). */
interface TypeNode {
  readonly typeName: string;
  readonly fields?: readonly { readonly type: TypeNode }[];
  readonly itemsType?: TypeNode;
  readonly valuesType?: TypeNode;
  readonly types?: readonly TypeNode[];
  readonly underlyingType?: TypeNode;
  readonly size?: number;
}

/**
 * Walks an Avro body against its writer type, reading only lengths and counts, and throws
 * AvroBlockBombError when an array or map block declares more items than the bytes left could
 * hold. avsc's decoder trusts those counts: a random or malicious body that declares 2^60 map
 * entries keeps it looping, reading past the end, for hours, which stalls the partition behind
 * the message (seen in the fault suite's random-after-frame messages). It also refuses strings
 * that are not valid UTF-8 (AvroInvalidUtf8Error), which avsc would decode with replacement
 * characters. A body that passes is left for avsc to decode and validate in full.
 */
export function assertAvroBlocksBounded(type: Type, body: Buffer): void {
  walk(type as unknown as TypeNode, body, { pos: 0, zeroByteItemsLeft: MAX_ZERO_BYTE_ITEMS });
}

interface Walk {
  pos: number;
  zeroByteItemsLeft: number;
}

/**
 * The fewest bytes of each type met, kept across bodies: a type's is fixed by its schema, and
 * a schema's types live as long as the registry client's cache keeps the schema.
 */
const minSizes = new WeakMap<TypeNode, number>();

/** Whether bytes start to end of the body are valid UTF-8: ASCII (ids, names) without a copy or a view. */
function isUtf8At(body: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i += 1) if (body[i]! >= 0x80) return isUtf8(body.subarray(start, end));
  return true;
}

function walk(type: TypeNode, body: Buffer, at: Walk): void {
  // Past the end the body is invalid anyway: avsc reports that, with its own message.
  if (at.pos > body.length) return;
  switch (kindOf(type)) {
    case 'null':
      return;
    case 'boolean':
      at.pos += 1;
      return;
    case 'int':
    case 'long':
    case 'enum':
      readLong(body, at);
      return;
    case 'float':
      at.pos += 4;
      return;
    case 'double':
      at.pos += 8;
      return;
    case 'fixed':
      at.pos += type.size ?? 0;
      return;
    case 'string': {
      const length = readLong(body, at);
      const start = at.pos;
      at.pos += length > 0 ? length : 0;
      // avsc decodes invalid UTF-8 into U+FFFD without a word, so a usage event would be metered
      // under another id than the one its producer sent: not well-formed strings are refused here,
      // where their bytes are in hand (map keys too: they are read as strings).
      if (length > 0 && at.pos <= body.length && !isUtf8At(body, start, at.pos)) {
        throw new AvroInvalidUtf8Error(`an Avro string at byte ${start} is not valid UTF-8`);
      }
      return;
    }
    case 'bytes': {
      const length = readLong(body, at);
      at.pos += length > 0 ? length : 0;
      return;
    }
    case 'record': {
      // Indexed loops here and below: this walk runs for every message and is not inlined
      // (it recurses), so an array iterator would be allocated per record and block.
      const fields = type.fields ?? [];
      for (let i = 0; i < fields.length; i += 1) {
        walk(fields[i]!.type, body, at);
        if (at.pos > body.length) return;
      }
      return;
    }
    case 'union': {
      const branch = type.types?.[readLong(body, at)];
      if (branch !== undefined) walk(branch, body, at);
      return;
    }
    case 'array':
      walkBlocks(body, at, type.itemsType!, undefined);
      return;
    case 'map':
      walkBlocks(body, at, STRING, type.valuesType!);
      return;
    case 'logical':
      walk(type.underlyingType!, body, at);
      return;
    case 'unknown':
      return;
  }
}

const STRING: TypeNode = { typeName: 'string' };

/**
 * Array and map blocks: a count (negative: followed by the block's byte size), then the items; 0
 * ends. An item is one value (array) or a key and a value (map: `second`).
 */
function walkBlocks(body: Buffer, at: Walk, first: TypeNode, second: TypeNode | undefined): void {
  const itemMinSize = minSizeOf(first) + (second === undefined ? 0 : minSizeOf(second));
  for (;;) {
    let count = readLong(body, at);
    if (count === 0) return;
    if (count < 0) {
      count = -count;
      readLong(body, at);
    }
    // Past the end too: avsc reads missing bytes as zeros and still loops `count` times.
    const left = Math.max(0, body.length - at.pos);
    // Items of at least one byte each cannot outnumber the bytes left; items of none share one
    // budget for the whole body, or a body of many blocks could still declare billions.
    const bound = itemMinSize > 0 ? Math.floor(left / itemMinSize) : at.zeroByteItemsLeft;
    if (!(count <= bound)) {
      throw new AvroBlockBombError(
        itemMinSize > 0
          ? `an array or map block declares ${count} items, but at most ${bound} can follow in the ${left} bytes left`
          : `an array or map block declares ${count} items of no size, over the ${MAX_ZERO_BYTE_ITEMS} a message may hold`,
      );
    }
    if (itemMinSize === 0) at.zeroByteItemsLeft -= count;
    for (let i = 0; i < count; i += 1) {
      walk(first, body, at);
      if (second !== undefined) walk(second, body, at);
      if (at.pos > body.length) return;
    }
  }
}

/** The fewest bytes a value of the type takes. A recursive reference counts as 0 while its own size is worked out. */
function minSizeOf(type: TypeNode): number {
  const known = minSizes.get(type);
  if (known !== undefined) return known;
  minSizes.set(type, 0);
  let size: number;
  switch (kindOf(type)) {
    case 'null':
    case 'unknown':
      size = 0;
      break;
    case 'float':
      size = 4;
      break;
    case 'double':
      size = 8;
      break;
    case 'fixed':
      size = type.size ?? 0;
      break;
    case 'record':
      size = (type.fields ?? []).reduce((sum, field) => sum + minSizeOf(field.type), 0);
      break;
    case 'logical':
      size = minSizeOf(type.underlyingType!);
      break;
    // boolean, int, long, enum, string, bytes (a length), union (a branch index), array and map
    // (the closing 0 count): at least one byte each.
    default:
      size = 1;
  }
  minSizes.set(type, size);
  return size;
}

type Kind =
  | 'null'
  | 'boolean'
  | 'int'
  | 'long'
  | 'enum'
  | 'float'
  | 'double'
  | 'fixed'
  | 'string'
  | 'bytes'
  | 'record'
  | 'union'
  | 'array'
  | 'map'
  | 'logical'
  | 'unknown';

function kindOf(type: TypeNode): Kind {
  // avsc names unions 'union:wrapped' or 'union:unwrapped', records of errors 'error', and gives
  // logical types (timestamp-millis and the like) an underlying type.
  if (type.underlyingType !== undefined) return 'logical';
  const name = type.typeName;
  if (name.startsWith('union')) return 'union';
  if (name === 'error') return 'record';
  // A custom long (LongType.__with, as the decoder's registry client builds longs) has the same bytes.
  if (name === 'abstract:long') return 'long';
  switch (name) {
    case 'null':
    case 'boolean':
    case 'int':
    case 'long':
    case 'enum':
    case 'float':
    case 'double':
    case 'fixed':
    case 'string':
    case 'bytes':
    case 'record':
    case 'array':
    case 'map':
      return name;
    default:
      return 'unknown';
  }
}

/**
 * A zig-zag varint, as a Number (exact up to 2^53, which is all a bound needs). Bytes past the
 * end read as 0, as avsc reads them, so a varint cut short has the value avsc would act on.
 */
function readLong(body: Buffer, at: Walk): number {
  let value = 0;
  let scale = 1;
  for (let shift = 0; shift < 70; shift += 7) {
    const byte = at.pos < body.length ? body[at.pos]! : 0;
    at.pos += 1;
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) break;
    scale *= 128;
  }
  // Zig-zag: even values are positive, odd ones negative.
  return value % 2 === 0 ? value / 2 : -(value + 1) / 2;
}
