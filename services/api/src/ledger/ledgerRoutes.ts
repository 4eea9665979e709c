import { pipeline, Readable } from 'node:stream';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ValidationError } from '@tally/domain';
import { balanceParams, customerId, errorResponses, nullableString, params, refTo } from '../apiSchemas';
import { beforePageQuery, pageSize } from '../pagination';
import { requestInstant } from '../requestInstant';
import type { LedgerHistory } from './ledgerHistory';
import { ledgerCsvRow, ledgerCsvStringifier, type LedgerCsvRow } from './ledgerCsv';
import { audienceOf } from '../accessGuard';
import { LedgerEntrySchema, type LedgerEntryView } from './ledgerEntryView';
import { BalanceStatementSchema, balanceStatementView } from './balanceStatementView';
import { UsageEntriesSchema } from './usageEntriesView';

/** Usage events one lookup answers for: a read of up to this many markers, and four ids per balance for each. */
const MAX_USAGE_LOOKUPS = 100;
const usageEventId = Type.String({ minLength: 1, maxLength: 256, description: "A usage event's id, as its producer sent it." });

/** Entries read per round trip of the CSV export: a page in memory at a time, however long the ledger. */
const EXPORT_PAGE_SIZE = 1000;

/** The first instant of the UTC calendar month that holds the millisecond before `end`: a period ending at a month's start is the month before. */
const startOfMonthBefore = (end: number) => {
  const start = new Date(end - 1);
  // Not Date.UTC: it reads the years 0 to 99 as 1900 to 1999.
  start.setUTCFullYear(start.getUTCFullYear(), start.getUTCMonth(), 1);
  start.setUTCHours(0, 0, 0, 0);
  return start.getTime();
};

/** A file name any browser and shell takes, whatever characters the balance id has. */
const exportFileName = (balanceId: string) => `ledger-${balanceId.replace(/[^A-Za-z0-9._-]/g, '_')}.csv`;

/** The ledger: every change of a balance, the manual ones, purchases, grants and usage alike. */
export const ledgerRoutes: FastifyPluginAsyncTypebox<{ readonly history: LedgerHistory }> = async (app, { history }) => {
  app.get(
    '/credit-balances/:balanceId/ledger',
    {
      config: { scope: 'read', portal: 'balance' },
      schema: {
        tags: ['credit balances'],
        operationId: 'listLedgerEntries',
        summary: "A balance's ledger, newest first",
        description: 'Every event of the balance. Pass `next` back as `before` for the following (older) page; `next` is null on the last page.',
        params: balanceParams,
        querystring: beforePageQuery('Entries'),
        response: { 200: Type.Object({ items: Type.Array(refTo(LedgerEntrySchema)), next: nullableString() }), ...errorResponses },
      },
    },
    async (request) => {
      const { before } = request.query;
      return history.page(request.params.balanceId, {
        limit: pageSize(request.query),
        ...(before !== undefined ? { before: BigInt(before) } : {}),
      }, audienceOf(request));
    },
  );

  app.get(
    '/credit-balances/:balanceId/statement',
    {
      config: { scope: 'read', portal: 'balance' },
      schema: {
        tags: ['credit balances'],
        operationId: 'getBalanceStatement',
        summary: "A balance's statement of a period",
        description:
          "What the balance stood at when the period began (`opening`), what was added and taken in it, by source, and what it stood at when it ended (`closing`): `closing.balance` is always `opening.balance` + `toppedUp` − `consumed`. An entry belongs to the period it was recorded in (its `recordedAt`, when the ledger took it), not to when its usage happened, so a statement of a past period does not change when late usage is metered: that usage is in the period that metered it. `from` is inclusive and `to` exclusive, e.g. a calendar month as `from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z`; `to` defaults to now and `from` to the start of the calendar month (UTC) the period ends in, so no query at all is this month so far and `to=2026-04-01T00:00:00Z` alone is March. Reads the balance's ledger a page at a time: from where an earlier statement found the first entry recorded at or after an instant at or before `from` (or from its start when none did) to the period's first entry (none, when that instant is `from` itself), then from the latest such place at or before `to`, with the sums of what came before it, to the period's end (nothing, when that instant is `to` itself: a closed calendar month, once stated, reads no entry). Statements keep those places for their `from` and `to` when they start a UTC day, as a calendar month's do, or lie 1,000 entries past the previous one, and about every 1,000 entries they read.",
        params: balanceParams,
        querystring: Type.Object(
          { from: Type.Optional(Type.String({ format: 'date-time' })), to: Type.Optional(Type.String({ format: 'date-time' })) },
          { additionalProperties: false },
        ),
        response: { 200: BalanceStatementSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const to = requestInstant(request.query.to, 'to')?.getTime() ?? Date.now();
      const period = { from: requestInstant(request.query.from, 'from')?.getTime() ?? startOfMonthBefore(to), to };
      if (period.from >= period.to) throw new ValidationError('from must be before to');
      const { balanceId } = request.params;
      // A long ledger takes seconds to fold (README, Statements: about 100,000 entries a second
      // on the development machine, under half that under jest): a client that
      // goes away meanwhile (its own timeout, a closed page) stops the read at the next page.
      const gone = new AbortController();
      reply.raw.once('close', () => gone.abort(new Error('the client went away')));
      try {
        return balanceStatementView(balanceId, period, await history.statement(balanceId, period, gone.signal));
      } catch (error) {
        if (!gone.signal.aborted) throw error;
        // Nobody to answer: no 500 for a read nobody waits for.
        request.log.info({ balanceId }, 'the statement was abandoned: its client went away');
        return reply.hijack();
      }
    },
  );

  app.get(
    '/credit-balances/:balanceId/ledger.csv',
    {
      config: { scope: 'read', portal: 'balance' },
      schema: {
        tags: ['credit balances'],
        operationId: 'exportLedgerCsv',
        summary: "A balance's whole ledger as CSV, oldest first",
        description:
          'Every entry of the balance, oldest first, one row per ledger entry with the JSON entry\'s fields as columns (`purchase` and `grant` spread into `purchase…` and `grant…` columns; empty where null), for a statement or a spreadsheet. `from` (inclusive) and `to` (exclusive) keep the entries whose `occurredAt` falls between them. Streamed as it is read: a failure after the answer has begun breaks it off without the last chunk of its chunked encoding, which HTTP clients report as an error. Cells that a spreadsheet would run as a formula start with `\'`.',
        params: balanceParams,
        querystring: Type.Object(
          { from: Type.Optional(Type.String({ format: 'date-time' })), to: Type.Optional(Type.String({ format: 'date-time' })) },
          { additionalProperties: false },
        ),
        response: { 200: { description: 'RFC 4180 CSV with a header line.', content: { 'text/csv': { schema: Type.String() } } }, ...errorResponses },
      },
    },
    async (request, reply) => {
      const from = requestInstant(request.query.from, 'from')?.getTime();
      const to = requestInstant(request.query.to, 'to')?.getTime();
      if (from !== undefined && to !== undefined && from >= to) throw new ValidationError('from must be before to');
      const { balanceId } = request.params;
      const pages = history.chronological(balanceId, EXPORT_PAGE_SIZE, audienceOf(request));
      // The first page is read before anything is answered: an unknown balance is a 404, not an empty file.
      const first = await pages.next();
      const inRange = (entry: LedgerEntryView) => {
        const at = Date.parse(entry.occurredAt);
        return (from === undefined || at >= from) && (to === undefined || at < to);
      };
      async function* rows(): AsyncGenerator<LedgerCsvRow> {
        if (first.done) return;
        for (const entry of first.value) if (inRange(entry)) yield ledgerCsvRow(entry);
        for await (const page of pages) for (const entry of page) if (inRange(entry)) yield ledgerCsvRow(entry);
      }
      // A failure once the headers are out cannot become a 5xx: pipeline destroys the stream, and
      // Fastify ends the connection without the last chunk, which the client sees as an error.
      const csv = pipeline(Readable.from(rows()), ledgerCsvStringifier(), (error) => {
        if (error !== undefined && error !== null) request.log.warn({ err: error, balanceId }, 'the ledger export stopped before its end');
      });
      return reply
        .header('content-type', 'text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="${exportFileName(balanceId)}"`)
        // The schema's string, as a stream: Fastify sends a stream as it comes, unserialised.
        .send(csv as unknown as string);
    },
  );

  app.get(
    '/customers/:customerId/usage-events/:eventId',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['usage'],
        operationId: 'getUsageEventEntries',
        summary: 'What a usage event charged',
        description:
          "Whether the customer's usage event `eventId` is metered, and the ledger entries it wrote on each of the customer's balances: for a product engineer asking whether an event counted and what it cost. Read by the ids metering derives from the event (its metered-usage record and its entries' ids), so it is one lookup however long the ledgers are. An event with `:` or `%` in its id metered before ids were encoded part by part is found as metered without its entries.",
        params: params({ customerId, eventId: usageEventId }),
        response: { 200: UsageEntriesSchema, ...errorResponses },
      },
    },
    async (request) => (await history.usage(request.params.customerId, [request.params.eventId]))[0]!,
  );

  app.post(
    '/customers/:customerId/usage-event-lookups',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['usage'],
        operationId: 'lookUpUsageEvents',
        summary: 'What several usage events charged',
        description: `The answer of GET /v1/customers/{customerId}/usage-events/{eventId} for each of up to ${MAX_USAGE_LOOKUPS} of the customer's usage events at once, in the order asked, in one read: for a reconciliation of what a backend sent against what was charged. Changes nothing (a POST for the length of its list; a path of its own, so no usage event id can be mistaken for it).`,
        params: params({ customerId }),
        body: Type.Object(
          { ids: Type.Array(usageEventId, { minItems: 1, maxItems: MAX_USAGE_LOOKUPS, uniqueItems: true }) },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(UsageEntriesSchema) }), ...errorResponses },
      },
    },
    async (request) => ({ items: await history.usage(request.params.customerId, request.body.ids) }),
  );
};
