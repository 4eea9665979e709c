import { ValidationError } from '@tally/domain';
import type { FastifyInstance } from 'fastify';

/** A body whose bytes are not valid UTF-8, which JSON must be (RFC 8259): 400, as for any body that is not JSON. */
export class InvalidUtf8BodyError extends ValidationError {
  override readonly code = 'invalid_json';
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses these media types as JSON, refusing bytes that are not UTF-8. Fastify's own parser reads
 * them as U+FFFD: usage ids evt-<FF> and evt-<FE> would both be evt-\ufffd and be charged once,
 * and a product or customer name would be stored other than it was sent. The consumer
 * dead-letters such bytes on the topic; over HTTP they are refused.
 */
export function addUtf8JsonParser(app: FastifyInstance, mediaTypes: readonly string[]): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser([...mediaTypes], { parseAs: 'buffer' }, (request, body: Buffer, done) => {
    let text: string;
    try {
      text = strictUtf8.decode(body);
    } catch {
      done(new InvalidUtf8BodyError('the request body is not valid UTF-8, so not JSON: send it as UTF-8'), undefined);
      return;
    }
    parseJson(request, text, done);
  });
}
