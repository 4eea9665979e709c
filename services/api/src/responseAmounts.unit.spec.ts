import { formatCredits } from '@tally/domain';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify from 'fastify';
import { ErrorSchema, SIGNED_CREDITS_PATTERN } from './apiSchemas';
import { CreditBalanceSchema } from './balances/balanceView';
import { HoldSchema } from './holds/holdView';
import { BalanceStatementSchema } from './ledger/balanceStatementView';
import { LedgerEntrySchema } from './ledger/ledgerEntryView';
import { usageRoutes } from './usage/usageRoutes';
import { webhookDocument } from './webhooks/webhookDocument';

type Schema = { pattern?: string; properties?: Record<string, Schema>; items?: Schema; anyOf?: Schema[]; required?: string[] };
const patternOf = (schema: object, ...path: string[]): string | undefined => path.reduce<Schema | undefined>((at, name) => at?.properties?.[name], schema as Schema)?.pattern;

/**
 * Every money amount Tally answers is a decimal string; the OpenAPI document says which strings,
 * so generated clients can parse them without guessing (response serialization does not check
 * patterns: it costs nothing per answer).
 */
describe('money amounts in answers', () => {
  it('take every amount formatCredits writes, negative and beyond a request bound, and nothing else', () => {
    const pattern = new RegExp(SIGNED_CREDITS_PATTERN);
    for (const micros of [0n, 1n, -1n, 12_500_000n, -7_500_000n, 10n ** 24n + 1n, -(10n ** 24n)]) expect(formatCredits(micros)).toMatch(pattern);
    for (const text of ['', '-', '1e3', '.5', '12.', '+1', '1.0000001', ' 1', '1,5']) expect(text).not.toMatch(pattern);
  });

  it('are stated with that pattern on balances, ledger entries, holds, statements and webhook balances', () => {
    expect(SIGNED_CREDITS_PATTERN).toEqual(expect.any(String));
    const amounts: Array<[string, string | undefined]> = [
      ...['balance', 'held', 'available', 'overdraftLimit'].map((name): [string, string | undefined] => [`CreditBalance.${name}`, patternOf(CreditBalanceSchema, name)]),
      ...['credits', 'balanceAfter', 'heldAfter'].map((name): [string, string | undefined] => [`LedgerEntry.${name}`, patternOf(LedgerEntrySchema, name)]),
      ...['credits', 'captured', 'released', 'balance', 'held', 'available', 'overdraftLimit'].map((name): [string, string | undefined] => [`Hold.${name}`, patternOf(HoldSchema, name)]),
      ...[['opening', 'balance'], ['opening', 'held'], ['closing', 'balance'], ['closing', 'held'], ['toppedUp'], ['consumed'], ['toppedUpBySource', 'purchase'], ['consumedBySource', 'usage']].map(
        (path): [string, string | undefined] => [`BalanceStatement.${path.join('.')}`, patternOf(BalanceStatementSchema, ...path)],
      ),
    ];
    const webhook = (webhookDocument()['credit_balance.low'] as { post: { requestBody: { content: { 'application/json': { schema: Schema } } } } }).post.requestBody.content['application/json'].schema;
    for (const name of ['balance', 'held', 'available', 'lowBalanceThreshold']) amounts.push([`webhook data.balance.${name}`, patternOf(webhook, 'data', 'balance', name)]);
    expect(amounts.filter(([, pattern]) => pattern !== SIGNED_CREDITS_PATTERN).map(([name]) => name)).toEqual([]);
  });
});

describe('POST /v1/usage-events in the OpenAPI document', () => {
  it('describes each event (a usage event or a CloudEvent), while one bad event is still refused alone', async () => {
    const app = Fastify().withTypeProvider<TypeBoxTypeProvider>();
    app.addSchema(ErrorSchema);
    await app.register(swagger, { openapi: { openapi: '3.1.0', info: { title: 't', version: '1' } } });
    const published: unknown[] = [];
    await app.register(usageRoutes, { publisher: { publish: async (events) => (published.push(...events), { refused: [] }), stop: async () => undefined } });
    await app.ready();

    const body = (app.swagger() as { paths: Record<string, { post: { requestBody: { content: Record<string, { schema: Schema }> } } }> }).paths['/usage-events']!.post.requestBody.content;
    const item = body['application/json']!.schema.properties!.events!.items!;
    expect(item.anyOf?.map(({ required }) => required)).toEqual([
      ['id', 'customerId', 'event', 'timestamp'],
      ['specversion', 'id', 'source', 'type', 'subject', 'time'],
    ]);
    expect(body['application/cloudevents-batch+json']!.schema.items).toEqual(item.anyOf![1]);

    const response = await app.inject({
      method: 'POST',
      url: '/usage-events',
      payload: { events: [{ id: 'ok', customerId: 'acme', event: 'api_call', timestamp: '2026-03-01T12:00:00Z' }, { id: 'bad', customerId: 'acme' }] },
    });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toMatchObject({ accepted: 1, refused: [{ index: 1, id: 'bad' }] });
    expect(published).toHaveLength(1);
    await app.close();
  });
});
