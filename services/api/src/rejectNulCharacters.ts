import { ValidationError } from '@tally/domain';
import type { FastifyRequest } from 'fastify';

const NUL = '\u0000';

function findNul(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return value.includes(NUL) ? path : undefined;
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index += 1) {
      const found = findNul(value[index], `${path}[${index}]`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    for (const [key, inner] of Object.entries(value)) {
      if (key.includes(NUL)) return `${path}.<key>`;
      const found = findNul(inner, `${path}.${key}`);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/**
 * PostgreSQL text and jsonb cannot hold U+0000, so a NUL anywhere in a request would fail deep
 * in a query as a 500. Valid JSON and URLs can carry it (`\u0000`, `%00`): refuse it here, for
 * every route, as the client's mistake it is.
 */
export async function rejectNulCharacters(request: FastifyRequest): Promise<void> {
  const found =
    findNul(request.params, 'params') ?? findNul(request.query, 'query') ?? findNul(request.body, 'body');
  if (found !== undefined) throw new ValidationError(`${found} contains the NUL character (U+0000), which is not accepted`);
}
