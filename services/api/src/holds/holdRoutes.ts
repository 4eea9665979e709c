import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { formatCredits, MAX_OPEN_HOLDS, parsePositiveCredits, ValidationError } from '@tally/domain';
import { balanceParams, credits, errorResponses, IDEMPOTENCY_KEY_PATTERN, params, reason, refTo } from '../apiSchemas';
import { actorOption } from '../accessGuard';
import { requestHash } from '../requestHash';
import { requestInstant } from '../requestInstant';
import type { HoldService } from './holdService';
import { HoldSchema } from './holdView';

interface HoldRoutesOptions {
  readonly holds: HoldService;
}

const tags = ['holds'];
const HOLD = refTo(HoldSchema);
/** Longest a hold may be placed for: a week. A job that runs longer captures part and places another. */
const MAX_HOLD_SECONDS = 7 * 86_400;
/** A hold id: a balance id and an Idempotency-Key (up to 255 characters, ":" and "%" escaped in 3), joined by ":". */
const holdParams = params({ holdId: Type.String({ minLength: 3, maxLength: 1024 }) });

const changeDescription =
  'Idempotent: a hold is captured or released once, and the same request again answers the first result (header idempotent-replayed: true); with another body (another amount or reason) it is 409 `hold_not_open`, saying what the first did: there is no Idempotency-Key here, the hold itself is the key. Capturing or releasing a hold already captured, released or expired is 409 `hold_not_open` too; an unknown hold is 404 `hold_not_found`.';

/** Holds: credits set aside before an expensive job, captured (charged) or released when it ends, freed automatically when they expire. */
export const holdRoutes: FastifyPluginAsyncTypebox<HoldRoutesOptions> = async (app, { holds }) => {
  app.post(
    '/credit-balances/:balanceId/holds',
    {
      config: { scope: 'write' },
      schema: {
        tags,
        operationId: 'placeHold',
        summary: 'Set credits aside for a job about to run',
        description:
          'Granted when available (balance − held) minus `credits` stays at or above −overdraftLimit; otherwise 402 `insufficient_credits` with `available`. ' +
          `A balance has at most ${MAX_OPEN_HOLDS} open holds: another is 409 \`too_many_open_holds\` until some are captured, released or expire. ` +
          'Concurrent holds are decided one after another on the balance, so two can never both take the last credits. The Idempotency-Key is required and makes the hold id: the same key with the same body answers the hold it made (header idempotent-replayed: true); with another body it is 409. Give exactly one of `expiresInSeconds` and `expiresAt` (at most a week ahead); a hold neither captured nor released by then is freed (HoldExpired).',
        params: balanceParams,
        headers: Type.Object({
          'idempotency-key': Type.String({ pattern: IDEMPOTENCY_KEY_PATTERN, description: 'Required: it makes the hold id, so a retry finds the hold it placed.' }),
        }),
        body: Type.Object(
          {
            credits: Type.Unsafe<string>({ ...credits, description: 'Greater than 0.' }),
            expiresInSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_HOLD_SECONDS })),
            expiresAt: Type.Optional(Type.String({ format: 'date-time', description: 'ISO-8601 with a time zone, in the future and at most a week ahead.' })),
            reference: Type.Optional(Type.Unsafe<string | null>({ ...reason, description: "The caller's reference for the job, recorded with the hold." })),
          },
          { additionalProperties: false },
        ),
        response: { 201: HOLD, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { credits: amount, expiresInSeconds, expiresAt, reference = null } = request.body;
      if ((expiresInSeconds === undefined) === (expiresAt === undefined)) throw new ValidationError('give exactly one of expiresInSeconds and expiresAt');
      const expiry = requestInstant(expiresAt, 'expiresAt')?.getTime();
      if (expiry !== undefined && expiry > Date.now() + MAX_HOLD_SECONDS * 1000) throw new ValidationError('expiresAt must be at most a week ahead');
      const held = parsePositiveCredits(amount);
      const idempotencyKey = request.headers['idempotency-key'];
      // Hashed in normalised form: "10" and "10.0", or two spellings of one instant, are one request.
      const normalised = { credits: formatCredits(held), expiresInSeconds: expiresInSeconds ?? null, expiresAt: expiry === undefined ? null : new Date(expiry).toISOString(), reference };
      const { hold, replayed } = await holds.place(
        request.params.balanceId,
        { credits: held, expires: normalised.expiresAt === null ? { inSeconds: expiresInSeconds! } : { at: normalised.expiresAt }, reference },
        { idempotencyKey, requestHash: requestHash(normalised), ...actorOption(request) },
      );
      return reply.code(201).header('idempotent-replayed', String(replayed)).send(hold);
    },
  );

  app.post(
    '/holds/:holdId/capture',
    {
      config: { scope: 'write', optionalBody: true },
      schema: {
        tags,
        operationId: 'captureHold',
        summary: 'Charge a hold',
        description: `Charges the held credits, or \`credits\` of them (never more), as a CreditConsumed with source \`hold\`, and frees the rest. Refused (409 \`hold_not_open\`) from the hold's expiresAt on. ${changeDescription}`,
        params: holdParams,
        body: Type.Optional(
          Type.Object(
            {
              credits: Type.Optional(Type.Unsafe<string>({ ...credits, description: 'Greater than 0, at most the held amount; absent: all of it.' })),
              reason: Type.Optional(reason),
            },
            { additionalProperties: false },
          ),
        ),
        response: { 200: HOLD, ...errorResponses },
      },
    },
    async (request, reply) => {
      const body = request.body ?? {};
      const charged = body.credits === undefined ? undefined : parsePositiveCredits(body.credits);
      const input = { ...(charged !== undefined ? { credits: charged } : {}), reason: body.reason ?? null };
      // Hashed with the amount it comes to (absent: the hold's, which the ledger knows), so naming all of it is the same request.
      const hash = (captured: bigint) => requestHash({ credits: formatCredits(captured), reason: input.reason });
      const { hold, replayed } = await holds.capture(request.params.holdId, input, { requestHash: hash, ...actorOption(request) });
      return reply.header('idempotent-replayed', String(replayed)).send(hold);
    },
  );

  app.post(
    '/holds/:holdId/release',
    {
      config: { scope: 'write', optionalBody: true },
      schema: {
        tags,
        operationId: 'releaseHold',
        summary: 'Free a hold without charging it',
        description: `Frees all the held credits. Refused (409 \`hold_not_open\`) from the hold's expiresAt on, as a capture is: the hold is expired then, even before it is freed. ${changeDescription}`,
        params: holdParams,
        body: Type.Optional(Type.Object({ reason: Type.Optional(reason) }, { additionalProperties: false })),
        response: { 200: HOLD, ...errorResponses },
      },
    },
    async (request, reply) => {
      const input = { reason: request.body?.reason ?? null };
      const { hold, replayed } = await holds.release(request.params.holdId, input, { requestHash: requestHash(input), ...actorOption(request) });
      return reply.header('idempotent-replayed', String(replayed)).send(hold);
    },
  );
};
