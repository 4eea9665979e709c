import type { FastifyInstance, FastifySchema } from 'fastify';
import type { RouteScope } from './apiScopes';

/**
 * Routes of the API's own documentation (swagger-ui) and the web interfaces' static files
 * (@fastify/static under /ui/), which declare nothing themselves: public, they hold no data.
 */
const DOCS = /^\/(docs|ui)(\/|$)/;

/**
 * Every route declares the scope it needs as `config: { scope }`; one without is a bug caught
 * when the app is built, not a route open to any key. The scope is written into the route's
 * OpenAPI operation as `x-tally-scope` and as the bearer requirement's role, so the document
 * says what each key may call. Must be called before any route is added.
 */
export function declareRouteScopes(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    let scope: RouteScope | undefined = route.config?.scope;
    if (scope === undefined && DOCS.test(route.url)) {
      scope = 'public';
      route.config = { ...route.config, scope };
    }
    if (scope === undefined) throw new Error(`route ${String(route.method)} ${route.url} declares no scope (config: { scope })`);
    route.schema = {
      ...route.schema,
      'x-tally-scope': scope,
      // Whether a customer's portal token reaches the route too (accessGuard.ts), and for whom.
      ...(route.config?.portal !== undefined ? { 'x-tally-portal': route.config.portal } : {}),
      security: scope === 'public' ? [] : [{ bearerAuth: [scope] }],
    } as FastifySchema;
  });
}
