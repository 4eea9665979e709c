import { Writable } from 'node:stream';
import pino, { type Level, type Logger } from 'pino';

/** A logger whose lines (pino's JSON, one per entry) a test reads: for waiting on a logged failure. */
export function capturedLog(level: Level): { readonly logger: Logger; readonly lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { logger: pino({ level }, stream), lines };
}
