import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AuthenticationRequiredError, RequestBodyTimeoutError, UnsupportedContentEncodingError } from './apiErrors';
import type { BearerAuth, Principal } from './bearerAuth';
import { mapClientError, mapError } from './errorMapping';

export interface RequestLimitOptions {
  /** Longest a body may take to arrive once the request is admitted; 0 is no limit. */
  readonly bodyTimeoutMs: number;
  /** Connections held at once; more are closed as they arrive. */
  readonly maxConnections: number;
}

/**
 * What keeps a slow or greedy client from holding the process: a connection cap, a body
 * deadline, `Expect: 100-continue` answered only to a valid key, and bodies the API cannot read
 * (an unknown Content-Encoding) refused before they are read. The request and header timeouts
 * are the server's own options, set where the app is built.
 */
export function registerRequestLimits(app: FastifyInstance, auth: BearerAuth, options: RequestLimitOptions): void {
  app.server.maxConnections = options.maxConnections;

  // With a listener here Node no longer answers 100 Continue by itself: a client without a
  // valid key never hears "go on", and gets its 401 before sending the body.
  app.server.on('checkContinue', (request, response) => {
    if (auth.authenticate(request.headers.authorization).kind === 'key') response.writeContinue();
    app.server.emit('request', request, response);
  });

  app.addHook('preParsing', async (request, reply, payload) => {
    const encoding = request.headers['content-encoding']?.trim().toLowerCase();
    if (encoding !== undefined && encoding !== '' && encoding !== 'identity') {
      throw new UnsupportedContentEncodingError(`Content-Encoding "${encoding.slice(0, 40)}" is not supported; send the body uncompressed`);
    }
    const hasBody = request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length'] ?? 0) > 0;
    if (options.bodyTimeoutMs <= 0 || !hasBody) return payload;
    // The body parser listens for the payload's errors: this one becomes a 408, and the
    // connection is closed (onSend below) with whatever the client had still to send.
    const timer = setTimeout(() => {
      payload.emit('error', new RequestBodyTimeoutError(`the request body did not arrive within ${options.bodyTimeoutMs} ms`));
    }, options.bodyTimeoutMs);
    timer.unref();
    const clear = () => clearTimeout(timer);
    payload.once('end', clear);
    payload.once('close', clear);
    // Answered before the body was read (a 413 on Content-Length, say): the deadline is moot.
    reply.raw.once('close', clear);
    return payload;
  });

  app.addHook('onSend', async (request, reply) => {
    // Answered before the body was read (a 401, 403, 413, 415 or 429): close the connection
    // rather than read, to keep it alive, a body nobody will use.
    if (!request.raw.complete) reply.header('connection', 'close');
    // Nothing a key can see belongs in a shared cache.
    if (request.routeOptions.config.scope !== 'public') reply.header('cache-control', 'no-store');
  });
}

/**
 * Fastify's `frameworkErrors`: a URL that does not decode answers through the error contract,
 * and, like every route, only to a valid credential (a key, a portal token, a console session:
 * the access guard's own authentication); a client without one learns nothing from it.
 */
export function frameworkErrorHandler(authenticate: (request: FastifyRequest) => Promise<Principal>) {
  return (error: Error, request: FastifyRequest, reply: FastifyReply): void => {
    const answer = (refusal: unknown) => {
      const mapped = mapError(refusal);
      for (const [name, value] of Object.entries(mapped.headers ?? {})) reply.header(name, value);
      void reply.code(mapped.statusCode).header('cache-control', 'no-store').send(mapped.body);
    };
    authenticate(request).then(
      (principal) => answer(principal.kind === 'anonymous' ? new AuthenticationRequiredError(principal.reason) : error),
      // Who it is could not be told (the revocations' store away): that failure, not the URL's.
      answer,
    );
  };
}

/** Fastify's `clientErrorHandler`: a request Node could not parse, or that took too long, in the error contract. */
export function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  if (socket.writable) {
    const { statusCode, body } = mapClientError(error);
    const json = JSON.stringify(body);
    socket.write(
      `HTTP/1.1 ${statusCode} ${statusCode === 408 ? 'Request Timeout' : statusCode === 431 ? 'Request Header Fields Too Large' : 'Bad Request'}\r\n` +
        `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`,
    );
  }
  socket.destroy(error);
}
