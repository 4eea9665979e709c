import { Transform, type TransformCallback } from 'node:stream';
import { startTcpProxy, type TcpProxy } from './tcpProxy';
import { waitFor, type NotYet, type WaitForOptions } from './waitFor';

/**
 * Test-only: a TCP proxy in front of a single-node Kafka that clients use for every connection,
 * not only the bootstrap one. A plain proxy is not enough for that: the broker answers Metadata
 * and FindCoordinator with the address it advertises, and clients then connect there directly.
 * This one rewrites those addresses to its own, so cutting or stalling it cuts the client off
 * Kafka entirely. It can also swallow requests of chosen API keys while the rest flows, e.g.
 * Produce (0), so that a send waits for an answer that never comes while fetches still work.
 *
 * Understands the request and response framing (int32 size, then the header) and the bodies of
 * Metadata v0-v6 and FindCoordinator v0-v2, the versions kafkajs speaks; with a cluster of
 * several brokers every broker would be rewritten to this one address, so it is for one node.
 */
export interface KafkaProxy extends TcpProxy {
  /** `host:port` for the client's brokers list. */
  readonly broker: string;
  /** Swallows requests with these API keys (0 = Produce) until called again with none. */
  swallow(apiKeys: readonly number[]): void;
  /** How many requests were swallowed so far. */
  swallowedCount(): number;
}

const METADATA = 3;
const FIND_COORDINATOR = 10;
const PROXY_HOST = '127.0.0.1';

interface Pending {
  readonly apiKey: number;
  readonly version: number;
}

/** Splits a byte stream into Kafka frames (int32 size + that many bytes) and maps each. */
class FrameTransform extends Transform {
  private buffered: Buffer = Buffer.alloc(0);

  constructor(private readonly mapFrame: (frame: Buffer) => Buffer | undefined) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    try {
      while (this.buffered.length >= 4) {
        const size = this.buffered.readInt32BE(0);
        if (this.buffered.length < 4 + size) break;
        const frame = this.buffered.subarray(0, 4 + size);
        this.buffered = this.buffered.subarray(4 + size);
        const mapped = this.mapFrame(frame);
        if (mapped !== undefined) this.push(mapped);
      }
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }
}

/** A body being rewritten: reads from the original, writes the copy with some fields replaced. */
class Rewriter {
  private offset: number;
  private readonly parts: Buffer[] = [];
  private copiedUpTo: number;

  constructor(private readonly frame: Buffer, start: number) {
    this.offset = start;
    this.copiedUpTo = 0;
  }

  skip(bytes: number): void {
    this.offset += bytes;
  }

  int32(): number {
    const value = this.frame.readInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  /** Skips a STRING or NULLABLE_STRING (int16 length, -1 for null). */
  skipString(): void {
    const length = this.frame.readInt16BE(this.offset);
    this.offset += 2 + Math.max(0, length);
  }

  /** Replaces the STRING host and the INT32 port that follow. */
  replaceHostAndPort(host: string, port: number): void {
    this.parts.push(this.frame.subarray(this.copiedUpTo, this.offset));
    const hostLength = this.frame.readInt16BE(this.offset);
    this.offset += 2 + hostLength + 4;
    const replacement = Buffer.alloc(2 + Buffer.byteLength(host) + 4);
    replacement.writeInt16BE(Buffer.byteLength(host), 0);
    replacement.write(host, 2);
    replacement.writeInt32BE(port, 2 + Buffer.byteLength(host));
    this.parts.push(replacement);
    this.copiedUpTo = this.offset;
  }

  /** The rewritten frame, its size field corrected. */
  finish(): Buffer {
    this.parts.push(this.frame.subarray(this.copiedUpTo));
    const out = Buffer.concat(this.parts);
    out.writeInt32BE(out.length - 4, 0);
    return out;
  }
}

function rewriteMetadata(frame: Buffer, version: number, port: number): Buffer {
  // Response header v0: size, correlation id; then the body.
  const body = new Rewriter(frame, 8);
  if (version >= 3) body.skip(4); // throttle_time_ms
  const brokers = body.int32();
  for (let index = 0; index < brokers; index += 1) {
    body.skip(4); // node_id
    body.replaceHostAndPort(PROXY_HOST, port);
    if (version >= 1) body.skipString(); // rack
  }
  return body.finish();
}

function rewriteFindCoordinator(frame: Buffer, version: number, port: number): Buffer {
  const body = new Rewriter(frame, 8);
  if (version >= 1) body.skip(4); // throttle_time_ms
  body.skip(2); // error_code
  if (version >= 1) body.skipString(); // error_message
  body.skip(4); // node_id
  body.replaceHostAndPort(PROXY_HOST, port);
  return body.finish();
}

export async function startKafkaProxy(broker: string): Promise<KafkaProxy> {
  const [host, portText] = broker.split(':');
  let swallowed = new Set<number>();
  let swallowedCount = 0;
  let port = 0;
  const proxy = await startTcpProxy(Number(portText), host, {
    intercept: () => {
      const pending = new Map<number, Pending>();
      const toServer = new FrameTransform((frame) => {
        // Request header: size, api_key int16, api_version int16, correlation_id int32, ...
        const apiKey = frame.readInt16BE(4);
        pending.set(frame.readInt32BE(8), { apiKey, version: frame.readInt16BE(6) });
        if (!swallowed.has(apiKey)) return frame;
        swallowedCount += 1;
        return undefined;
      });
      const toClient = new FrameTransform((frame) => {
        const correlationId = frame.readInt32BE(4);
        const request = pending.get(correlationId);
        pending.delete(correlationId);
        if (request?.apiKey === METADATA && request.version <= 6) return rewriteMetadata(frame, request.version, port);
        if (request?.apiKey === FIND_COORDINATOR && request.version <= 2) return rewriteFindCoordinator(frame, request.version, port);
        return frame;
      });
      return { toServer, toClient };
    },
  });
  port = proxy.port;
  return {
    ...proxy,
    broker: `${PROXY_HOST}:${proxy.port}`,
    swallow(apiKeys) {
      swallowed = new Set(apiKeys);
    },
    swallowedCount: () => swallowedCount,
  };
}

/**
 * Waits for `check` as waitFor does, cutting the proxy's connections before each look: a request
 * the proxy swallowed (a fetch a run waits on) is answered only by a cut, and a client not yet
 * done sends it again and waits again.
 */
export function waitCuttingConnections<T>(proxy: TcpProxy, check: () => T | NotYet | Promise<T | NotYet>, options: WaitForOptions): Promise<T> {
  return waitFor(
    () => {
      proxy.down();
      proxy.resume();
      return check();
    },
    options,
  );
}
