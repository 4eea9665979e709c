import { ValidationError } from '@tally/domain';
import type { FastifyInstance } from 'fastify';

/** A body whose bytes are not valid UTF-8, which JSON must be (RFC 8259): 400, as for any body that is not JSON. */
export class InvalidUtf8BodyError extends ValidationError {
  override readonly code = 'invalid_json';
}

/**
 * Valid JSON with a property the parser refuses (secure-json-parse): `__proto__`, or a
 * `constructor` holding a `prototype`, which would reach an object's prototype once copied. 400
 * `validation_failed` naming the property and where it is, as a schema's refusal names a field:
 * not "not valid JSON", which it is, so that an operator can tell what to rename.
 */
export class PrototypePropertyError extends ValidationError {}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Where a parsed body has what the parser refuses, named as the schema's messages name a field
 * (`body.consumption.0.where`), with what to say of it; undefined when it has none (the parser
 * refused the body for another reason). Searched as the parser searches, breadth first.
 */
function prototypePropertyOf(value: unknown): string | undefined {
  let level: Array<{ readonly node: unknown; readonly at: string }> = [{ node: value, at: 'body' }];
  while (level.length > 0) {
    const next: typeof level = [];
    for (const { node, at } of level) {
      if (typeof node !== 'object' || node === null) continue;
      if (Object.hasOwn(node, '__proto__')) return `${at} has a property named "__proto__", which the API does not accept: rename it`;
      const constructor: unknown = Object.hasOwn(node, 'constructor') ? (node as Record<string, unknown>).constructor : undefined;
      if (typeof constructor === 'object' && constructor !== null && Object.hasOwn(constructor, 'prototype')) {
        return `${at} has a property "constructor" holding a "prototype", which the API does not accept: rename it`;
      }
      for (const [key, child] of Object.entries(node)) next.push({ node: child, at: `${at}.${key}` });
    }
    level = next;
  }
  return undefined;
}

/** Why the parser refused text that is JSON: its prototype property, or undefined for text that is not JSON. */
function prototypeRefusalOf(text: string): string | undefined {
  try {
    // As the parser reads it: a byte-order mark first is dropped. JSON.parse keeps `__proto__` as a property of its own.
    return prototypePropertyOf(JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text));
  } catch {
    return undefined;
  }
}

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
    parseJson(request, text, (error, parsed) => {
      // The parser says "not valid JSON" of a prototype property too: read again (only then) to tell which.
      const refusal = error !== null && (error as { code?: unknown }).code === 'FST_ERR_CTP_INVALID_JSON_BODY' ? prototypeRefusalOf(text) : undefined;
      if (refusal !== undefined) done(new PrototypePropertyError(refusal), undefined);
      else done(error, parsed);
    });
  });
}
