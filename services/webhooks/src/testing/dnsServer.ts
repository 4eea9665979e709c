import dgram from 'node:dgram';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';

export interface DnsServer {
  /** `127.0.0.1:port`, for the guard's `dns.servers`. */
  readonly address: string;
  /** Queries that arrived and were not answered (the names it hangs on). */
  readonly unanswered: string[];
  /** Answers the queries it held with REFUSED (so no lookup outlives the test), then stops. */
  close(): Promise<void>;
}

/** The question's name (labels from offset 12) and the offset just past its type and class. */
function question(query: Buffer): { name: string; end: number } {
  const labels: string[] = [];
  let offset = 12;
  while (query[offset] !== 0) {
    const length = query[offset]!;
    labels.push(query.subarray(offset + 1, offset + 1 + length).toString('ascii'));
    offset += 1 + length;
  }
  return { name: labels.join('.').toLowerCase(), end: offset + 5 };
}

/**
 * A DNS server on 127.0.0.1 (UDP) that answers the A query of each name in `records` with its
 * IPv4 address (and its AAAA query with no address), the queries of each name in `missing` with
 * NXDOMAIN (no such name), and never answers any other query: a name whose DNS server hangs, as
 * a receiver's can.
 */
export async function startDnsServer(records: Readonly<Record<string, string>>, missing: readonly string[] = []): Promise<DnsServer> {
  const socket = dgram.createSocket('udp4');
  const unanswered: string[] = [];
  const held: Array<{ query: Buffer; from: AddressInfo }> = [];
  const reply = (message: Buffer, to: AddressInfo) =>
    new Promise<void>((resolve, reject) => socket.send(message, to.port, to.address, (error) => (error ? reject(error) : resolve())));
  socket.on('message', (query, from) => {
    const { name, end } = question(query);
    if (missing.includes(name)) {
      const noSuchName = Buffer.from(query.subarray(0, end));
      noSuchName.writeUInt16BE(0x8183, 2); // a response, recursion desired and available: NXDOMAIN
      noSuchName.fill(0, 6, 12); // the question alone: no answer, authority or additional records (EDNS)
      void reply(noSuchName, from);
      return;
    }
    const ipv4 = records[name];
    if (ipv4 === undefined) {
      unanswered.push(name);
      held.push({ query, from });
      return;
    }
    const isA = query.readUInt16BE(end - 4) === 1;
    const header = Buffer.alloc(12);
    query.copy(header, 0, 0, 2); // the query's id
    header.writeUInt16BE(0x8180, 2); // a response, recursion desired and available, no error
    header.writeUInt16BE(1, 4); // one question
    header.writeUInt16BE(isA ? 1 : 0, 6); // one answer to A, none (NODATA) to anything else
    const answer = Buffer.alloc(16);
    answer.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
    answer.writeUInt16BE(1, 2); // A
    answer.writeUInt16BE(1, 4); // IN
    answer.writeUInt32BE(60, 6); // TTL
    answer.writeUInt16BE(4, 10);
    ipv4.split('.').forEach((part, index) => answer.writeUInt8(Number(part), 12 + index));
    void reply(Buffer.concat([header, query.subarray(12, end), ...(isA ? [answer] : [])]), from);
  });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const { port } = socket.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    unanswered,
    async close() {
      await Promise.all(
        held.splice(0).map(({ query, from }) => {
          const refused = Buffer.from(query.subarray(0, question(query).end));
          refused.writeUInt16BE(0x8185, 2); // a response: REFUSED
          return reply(refused, from);
        }),
      );
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}
