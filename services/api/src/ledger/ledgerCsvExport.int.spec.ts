import { request as httpGet } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { waitFor } from '@tally/test-support';
import Fastify, { type FastifyInstance } from 'fastify';
import { ErrorSchema } from '../apiSchemas';
import { LedgerEntrySchema, type LedgerEntryView } from './ledgerEntryView';
import type { LedgerHistory } from './ledgerHistory';
import { ledgerRoutes } from './ledgerRoutes';

/**
 * What a client of the CSV export sees when the event store fails after the first page: not a
 * short file that looks whole, but an answer that ends without chunked encoding's last chunk,
 * which every HTTP client reports as an error; and a statement whose client left. Over a real
 * socket: inject() cannot show either.
 */
describe('the ledger export failing half-way', () => {
  let app: FastifyInstance;

  const entry = (revision: number): LedgerEntryView => ({
    id: `e${revision}`,
    type: 'CreditToppedUp',
    credits: '1',
    balanceAfter: String(revision),
    heldAfter: '0',
    holdId: null,
    source: 'manual',
    reason: null,
    usageEventId: null,
    usageEvent: null,
    quantity: null,
    occurredAt: '2026-03-01T12:00:00.000Z',
    recordedAt: '2026-03-01T12:00:00.000Z',
    revision: String(revision),
    position: String(revision),
    purchase: null,
    grant: null,
    refund: null,
    refundedBy: null,
    actor: null,
  });

  let statementsStarted = 0;
  let statementsAbandoned = 0;

  beforeAll(async () => {
    const history: LedgerHistory = {
      page: async () => ({ items: [], next: null }),
      async *chronological() {
        yield [entry(0), entry(1)];
        throw new Error('the event store went away');
      },
      // A statement that takes as long as its client waits: it ends only when the route's signal aborts.
      statement: (_balanceId, _period, signal) =>
        new Promise((_resolve, reject) => {
          statementsStarted += 1;
          signal!.addEventListener('abort', () => {
            statementsAbandoned += 1;
            reject(signal!.reason);
          });
        }),
      usage: () => Promise.reject(new Error('not read by these tests')),
    };
    app = Fastify({ logger: false }).withTypeProvider<TypeBoxTypeProvider>();
    for (const schema of [ErrorSchema, LedgerEntrySchema]) app.addSchema(schema);
    await app.register(ledgerRoutes, { history });
    await app.listen({ host: '127.0.0.1', port: 0 });
  });

  afterAll(async () => {
    await app?.close();
  });

  it('sends the rows it read, then ends the answer as broken, and the server goes on', async () => {
    const { port } = app.server.address() as AddressInfo;
    const outcome = await new Promise<{ status: number | undefined; body: string; broken: boolean }>((resolve) => {
      const chunks: Buffer[] = [];
      const request = httpGet({ host: '127.0.0.1', port, path: '/credit-balances/b1/ledger.csv' }, (response) => {
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode, body: Buffer.concat(chunks).toString(), broken: false }));
        response.on('error', () => resolve({ status: response.statusCode, body: Buffer.concat(chunks).toString(), broken: true }));
      });
      request.on('error', () => resolve({ status: undefined, body: Buffer.concat(chunks).toString(), broken: true }));
      request.end();
    });
    expect(outcome.status).toBe(200);
    expect(outcome.broken).toBe(true);
    expect(outcome.body.split('\r\n').slice(1, 3).map((line) => line.split(',')[0])).toEqual(['e0', 'e1']);
    // The process and its server are unharmed.
    expect((await app.inject({ method: 'GET', url: '/credit-balances/b1/ledger' })).statusCode).toBe(200);
  });

  it('stops reading a statement whose client went away, and answers nobody', async () => {
    const { port } = app.server.address() as AddressInfo;
    const request = httpGet({ host: '127.0.0.1', port, path: '/credit-balances/b1/statement?from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z' });
    request.on('error', () => undefined);
    request.end();
    await waitFor(() => statementsStarted === 1, { description: 'the statement being read' });
    request.destroy();
    await waitFor(() => statementsAbandoned === 1, { description: 'the statement abandoned' });
    expect((await app.inject({ method: 'GET', url: '/credit-balances/b1/ledger' })).statusCode).toBe(200);
  });
});
