import { ValidationError } from '@tally/domain';
import type { FastifyRequest } from 'fastify';

const NUL = '\u0000';

/**
 * The path of the first string (or key) holding a NUL. Walked with an explicit stack, not
 * recursion: a body is attacker-shaped, and 64 KiB of `[[[[...` nests deeper than the call stack.
 */
function findNul(root: unknown, rootPath: string): string | undefined {
  const pending: Array<{ value: unknown; path: string }> = [{ value: root, path: rootPath }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const { value, path } = next;
    if (typeof value === 'string') {
      if (value.includes(NUL)) return path;
    } else if (Array.isArray(value)) {
      value.forEach((inner, index) => pending.push({ value: inner, path: `${path}[${index}]` }));
    } else if (value !== null && typeof value === 'object') {
      for (const [key, inner] of Object.entries(value)) {
        if (key.includes(NUL)) return `${path}.<key>`;
        pending.push({ value: inner, path: `${path}.${key}` });
      }
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
