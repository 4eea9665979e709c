import { isWellFormedText, ValidationError } from '@tally/domain';
import type { FastifyRequest } from 'fastify';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The handler judges the body's text itself, item by item, and refuses what it cannot store or
     * publish: usage events, where one bad event is refused alone, as the consumer would
     * dead-letter it alone. Params and query are still checked here.
     */
    bodyTextCheckedByHandler?: boolean;
  }
}

const NUL = '\u0000';

/** Why a string cannot be stored, or undefined when it can. */
function flawOf(text: string): string | undefined {
  if (text.includes(NUL)) return 'contains the NUL character (U+0000), which is not accepted';
  if (!isWellFormedText(text)) return 'is not well-formed Unicode (it holds a lone surrogate), which is not accepted';
  return undefined;
}

/**
 * The path of the first string (or key) that cannot be stored, and why. Walked with an explicit
 * stack, not recursion: a body is attacker-shaped, and 64 KiB of `[[[[...` nests deeper than the
 * call stack.
 */
function findUnstorable(root: unknown, rootPath: string): string | undefined {
  const pending: Array<{ value: unknown; path: string }> = [{ value: root, path: rootPath }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const { value, path } = next;
    if (typeof value === 'string') {
      const flaw = flawOf(value);
      if (flaw !== undefined) return `${path} ${flaw}`;
    } else if (Array.isArray(value)) {
      value.forEach((inner, index) => pending.push({ value: inner, path: `${path}[${index}]` }));
    } else if (value !== null && typeof value === 'object') {
      for (const [key, inner] of Object.entries(value)) {
        const flaw = flawOf(key);
        if (flaw !== undefined) return `${path}.<key> ${flaw}`;
        pending.push({ value: inner, path: `${path}.${key}` });
      }
    }
  }
  return undefined;
}

/**
 * PostgreSQL text and jsonb cannot hold U+0000 nor a lone UTF-16 surrogate (22P02), so either
 * anywhere in a request would fail deep in a query as a 500. Valid JSON and URLs can carry them
 * (`\u0000`, `%00`, `"\ud800"`): refuse them here, for every route, as the client's mistake they are
 * (in the body too, unless the route is bodyTextCheckedByHandler).
 */
export async function rejectUnstorableText(request: FastifyRequest): Promise<void> {
  const found =
    findUnstorable(request.params, 'params') ??
    findUnstorable(request.query, 'query') ??
    (request.routeOptions.config.bodyTextCheckedByHandler === true ? undefined : findUnstorable(request.body, 'body'));
  if (found !== undefined) throw new ValidationError(found);
}
