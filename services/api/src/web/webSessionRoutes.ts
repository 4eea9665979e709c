import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { SESSION_COOKIE } from '../accessGuard';
import { AuthenticationRequiredError, InsufficientScopeError, NoConsoleSessionError } from '../apiErrors';
import { customerId, errorResponses, nullableString, params } from '../apiSchemas';
import { scopesGrant, type ApiScope } from '../apiScopes';
import type { BearerAuth } from '../bearerAuth';
import type { SignedTokens } from './signedTokens';
import type { TokenRevocations } from './tokenRevocations';

/** What a key needs to open a console session, and keep it: the access guard ends those of a key without it. */
export const CONSOLE_SCOPE = 'admin' satisfies ApiScope;

interface WebSessionRoutesOptions {
  readonly auth: BearerAuth;
  readonly tokens: SignedTokens;
  readonly revocations: TokenRevocations;
  readonly now: () => Date;
  /** The origin portal links are built on; undefined: the request's own scheme and host. */
  readonly publicUrl: string | undefined;
}

const SessionSchema = Type.Object({
  key: Type.Object(
    { id: Type.String(), name: nullableString() },
    { description: "The key the session was opened with: its id (the first 12 hex digits of its SHA-256) and its configured name. The console shows who is signed in; the key's changes to the catalog are recorded under it." },
  ),
  scopes: Type.Array(Type.String()),
  expiresAt: Type.String({ format: 'date-time' }),
  csrfToken: Type.String({ description: 'Send it as X-CSRF-Token on every write made with the session cookie.' }),
});

const tags = ['web interfaces'];

/**
 * Secure where the request came over TLS, or where customers and operators reach Tally over https
 * (TLS ended at a proxy that is not trusted to say so); the local console is plain http on 127.0.0.1.
 */
function cookieOptions(request: FastifyRequest, httpsOrigin: boolean) {
  const secure = httpsOrigin || request.protocol === 'https';
  return { path: '/', httpOnly: true, sameSite: 'strict', secure } as const;
}

/**
 * The web interfaces' credentials: an operator exchanges an admin key for the console's session
 * cookie; an operator or a product backend makes a customer a portal link.
 */
export const webSessionRoutes: FastifyPluginAsyncTypebox<WebSessionRoutesOptions> = async (app, { auth, tokens, revocations, now, publicUrl }) => {
  const httpsOrigin = publicUrl?.startsWith('https:') === true;
  app.post(
    '/console-sessions',
    {
      // Public: the key is in the body. A wrong one is 401, counted like a wrong bearer key.
      config: { scope: 'public' },
      schema: {
        tags,
        operationId: 'createConsoleSession',
        summary: 'Sign in to the console',
        description:
          "Exchanges an API key with the admin scope for a session cookie (HttpOnly, SameSite=Strict, expiring). Requests with the cookie (and no Authorization header) act with the key's scopes as configured now, while the key is configured with the admin scope and until signed out; writes must also send the returned `csrfToken` as `X-CSRF-Token`. Takes no CSRF token itself, and a JSON body only.",
        body: Type.Object({ key: Type.String({ minLength: 1, maxLength: 512 }) }, { additionalProperties: false }),
        response: { 201: SessionSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const principal = auth.authenticate(`Bearer ${request.body.key}`);
      if (principal.kind !== 'key') {
        await app.countFailedAuthentication(request, reply);
        throw new AuthenticationRequiredError('the API key is not valid');
      }
      if (!scopesGrant(principal.scopes, CONSOLE_SCOPE)) throw new InsufficientScopeError('the console needs a key with the admin scope');
      const { token, claims } = await tokens.openSession(principal, now());
      reply.setCookie(SESSION_COOKIE, token, { ...cookieOptions(request, httpsOrigin), expires: claims.expiresAt });
      return reply.code(201).send({ key: { id: principal.keyId, name: principal.keyName }, scopes: [...claims.scopes], expiresAt: claims.expiresAt.toISOString(), csrfToken: claims.csrfToken });
    },
  );

  app.get(
    '/console-sessions/current',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'getConsoleSession',
        summary: 'The console session of the request',
        description: "What the console reads after a reload: the session's scopes, expiry and CSRF token. 404 `no_console_session` for a request made with a key.",
        response: { 200: SessionSchema, ...errorResponses },
      },
    },
    async (request) => {
      const principal = request.principal;
      if (principal?.kind !== 'key' || principal.session === undefined) throw new NoConsoleSessionError('this request carries no console session cookie');
      // The scopes the session acts with now (the access guard's), which a key changed since may have narrowed.
      const { session } = principal;
      return { key: { id: principal.keyId, name: principal.keyName }, scopes: [...principal.scopes], expiresAt: session.expiresAt.toISOString(), csrfToken: session.csrfToken };
    },
  );

  app.delete(
    '/console-sessions/current',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'deleteConsoleSession',
        summary: 'Sign out of the console',
        description: 'Ends the session in every API process (its cookie, replayed, is refused until it would have expired) and clears the cookie.',
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      const session = request.principal?.kind === 'key' ? request.principal.session : undefined;
      if (session !== undefined) await revocations.revokeSession(session.sessionId, session.expiresAt, now());
      reply.clearCookie(SESSION_COOKIE, cookieOptions(request, httpsOrigin));
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/customers/:customerId/portal-sessions',
    {
      config: { scope: 'write' },
      schema: {
        tags,
        operationId: 'createPortalSession',
        summary: "A link to the customer's portal",
        description:
          "A signed, expiring token that admits this customer alone to the portal: its balances, ledger, consumption, purchase options, purchases and subscriptions (the routes marked `x-tally-portal`); every other route answers it 403. `url` opens the portal with it, on Tally's configured public origin (else on the scheme and host of this request); the token is in the URL's fragment, which browsers never send to a server. Give the link to the customer's browser only.",
        params: params({ customerId }),
        response: {
          201: Type.Object({ url: Type.String(), token: Type.String(), expiresAt: Type.String({ format: 'date-time' }) }),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      // The epoch now, read before signing: a revocation that Redis runs after this read voids the link.
      const epoch = await revocations.portalLinkEpoch(request.params.customerId);
      const { token, claims } = await tokens.issuePortalToken(request.params.customerId, epoch, now());
      // A backend that asks over an internal address would otherwise hand its customer a link to
      // that address; the configured origin is the one customers reach.
      const url = `${publicUrl ?? `${request.protocol}://${request.host}`}/portal#token=${token}`;
      return reply.code(201).send({ url, token, expiresAt: claims.expiresAt.toISOString() });
    },
  );

  app.delete(
    '/customers/:customerId/portal-sessions',
    {
      config: { scope: 'write' },
      schema: {
        tags,
        operationId: 'revokePortalSessions',
        summary: "Revoke the customer's portal links",
        description:
          'Every portal link of this customer made so far stops admitting it, in every API process (a leaked link, a customer who left); links made afterwards admit as usual. 204 whether or not the customer had any.',
        params: params({ customerId }),
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      await revocations.revokePortalLinks(request.params.customerId);
      return reply.code(204).send(null);
    },
  );
};
