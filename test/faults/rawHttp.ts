import { connect } from 'node:net';

export interface RawRequest {
  readonly method: string;
  /** Sent byte for byte: no encoding, no normalisation of `..`, whatever the URL rules say. */
  readonly path: string;
  /** In order; a repeated name is sent twice. */
  readonly headers?: ReadonlyArray<readonly [string, string]>;
  readonly body?: Buffer | string;
  /** Replaces the whole request (request line, headers, body) with these bytes. */
  readonly raw?: Buffer | string;
}

export interface RawResponse {
  /** undefined when the connection ended without a status line. */
  readonly status: number | undefined;
  /** The socket error or timeout that ended the exchange, if any. */
  readonly error?: string;
  readonly head: string;
}

/**
 * One HTTP/1.1 exchange over its own TCP connection, written by hand: fetch and http.request
 * refuse or rewrite exactly the requests a fuzz run must send (`..` segments, control bytes,
 * duplicate or oversized headers, bodies that contradict their Content-Length).
 */
export function sendRaw(port: number, request: RawRequest, timeoutMs = 15_000): Promise<RawResponse> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const head = Buffer.concat(chunks).toString('latin1').split('\r\n\r\n')[0] ?? '';
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      resolve({ status: match ? Number(match[1]) : undefined, head: head.slice(0, 500), ...(error === undefined ? {} : { error }) });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      // The status line and headers are all the fuzz run needs.
      if (Buffer.concat(chunks).includes('\r\n\r\n')) finish();
    });
    socket.on('end', () => finish());
    // A server that answers early (413) and closes while the body is still being sent resets the
    // connection: what it answered before counts.
    socket.on('error', (error) => finish(error.message));
    socket.on('connect', () => {
      if (request.raw !== undefined) {
        socket.write(request.raw);
        return;
      }
      const body = request.body === undefined ? undefined : Buffer.from(request.body);
      const headers: Array<readonly [string, string]> = [['Host', `127.0.0.1:${port}`], ['Connection', 'close'], ...(request.headers ?? [])];
      if (body !== undefined && !headers.some(([name]) => /^(content-length|transfer-encoding)$/i.test(name))) headers.push(['Content-Length', String(body.length)]);
      const head = `${request.method} ${request.path} HTTP/1.1\r\n${headers.map(([name, value]) => `${name}: ${value}\r\n`).join('')}\r\n`;
      socket.write(Buffer.from(head, 'latin1'));
      if (body !== undefined) socket.write(body);
    });
  });
}
