import type { FastifyInstance, FastifyRequest, FastifySchema, preValidationAsyncHookHandler } from 'fastify';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The body may be left out altogether (a POST with no body, so no content-type either): it
     * reads as {}. The route's body schema is still an object, checked when a body is sent.
     */
    optionalBody?: boolean;
  }
}

/** Marks the route's operation for documentOptionalBodies; removed from the document there. */
const OPTIONAL_BODY = 'x-tally-optional-body';

/**
 * Fastify validates an absent body against the route's object schema ("body must be object", a
 * 400), however optional the schema says it is: none reads as {} before validation.
 */
async function absentBodyAsEmpty(request: FastifyRequest): Promise<void> {
  request.body ??= {};
}

/**
 * Routes with `config: { optionalBody: true }` take a POST with no body as one with {}, and the
 * document says their body is not required. Must be called before any route is added.
 */
export function declareOptionalBodies(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    if (route.config?.optionalBody !== true) return;
    const own = route.preValidation === undefined ? [] : Array.isArray(route.preValidation) ? route.preValidation : [route.preValidation];
    route.preValidation = [absentBodyAsEmpty as preValidationAsyncHookHandler, ...own];
    route.schema = { ...route.schema, [OPTIONAL_BODY]: true } as FastifySchema;
  });
}

interface DocumentedOperation {
  [OPTIONAL_BODY]?: boolean;
  requestBody?: { required?: boolean };
}

/**
 * For @fastify/swagger's transformObject: it writes every body as `required: true` (Fastify
 * needs one whenever a schema is given), so the operations of optionalBody routes are mended here.
 */
export function documentOptionalBodies<T extends { paths?: Record<string, unknown> }>(document: T): T {
  for (const pathItem of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(pathItem as Record<string, DocumentedOperation>)) {
      if (typeof operation !== 'object' || operation === null || operation[OPTIONAL_BODY] !== true) continue;
      delete operation[OPTIONAL_BODY];
      if (operation.requestBody !== undefined) operation.requestBody.required = false;
    }
  }
  return document;
}
