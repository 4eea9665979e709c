import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

const BEARER = /^Bearer ([!-~]+)$/;

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * An onRequest hook that admits a request whose `Authorization: Bearer <key>` names one of the
 * keys. Keys are compared as SHA-256 digests with timingSafeEqual, and against every key
 * without stopping at a match, so neither a key's content nor its length nor its place in the
 * list shows in the response time.
 */
export function createBearerAuth(apiKeys: readonly string[]) {
  if (apiKeys.length === 0 || apiKeys.some((key) => !BEARER.test(`Bearer ${key}`))) {
    throw new Error('apiKeys must be a non-empty list of keys of printable ASCII without spaces');
  }
  const digests = apiKeys.map(digest);

  // Returning the reply after sending it tells Fastify that the request ends here.
  return async function bearerAuth(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    const header = request.headers.authorization;
    const match = header === undefined ? null : BEARER.exec(header);
    if (match === null) {
      return deny(reply, header === undefined ? 'the Authorization header is missing' : 'the Authorization header must be "Bearer <key>"');
    }
    const presented = digest(match[1]!);
    let admitted = false;
    for (const candidate of digests) admitted = timingSafeEqual(presented, candidate) || admitted;
    if (!admitted) return deny(reply, 'the API key is not valid');
    return undefined;
  };
}

function deny(reply: FastifyReply, message: string): FastifyReply {
  return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'unauthorized', message });
}
