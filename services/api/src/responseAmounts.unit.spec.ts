import { readFileSync } from 'node:fs';
import path from 'node:path';
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

type Schema = {
  $ref?: string;
  type?: string | string[];
  pattern?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  required?: string[];
};
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
    amounts.push(['CreditBalance.lowBalanceThreshold', patternOf(CreditBalanceSchema, 'lowBalanceThreshold')]);
    for (const name of ['available', 'overdraftLimit']) amounts.push([`Error.${name}`, patternOf(ErrorSchema, name)]);
    expect(amounts.filter(([, pattern]) => pattern !== SIGNED_CREDITS_PATTERN).map(([name]) => name)).toEqual([]);
  });
});

/**
 * Credit amounts by property name, as every answer and webhook names them; and each key of a
 * statement's `…BySource` sums. Names, not descriptions: a description may mention credits
 * without being an amount (a usage event "null for credits retained by hand"). `quantity` (usage
 * or bundles), `perUnitOf` and prices (a currency's amounts, PRICE_AMOUNT_PATTERN) are not credits.
 */
const CREDIT_AMOUNT_NAMES = new Set([
  'available',
  'balance',
  'balanceAfter',
  'captured',
  'closing',
  'consumed',
  'credits',
  'creditsPerPeriod',
  'held',
  'heldAfter',
  'lowBalanceThreshold',
  'opening',
  'overdraftLimit',
  'refunded',
  'released',
  'toppedUp',
]);

interface FoundAmount {
  readonly where: string;
  readonly pattern: string | undefined;
}

/** Every string property of `schema` named as a credit amount, following $refs into components (each once per path). */
function creditAmounts(document: { components: { schemas: Record<string, Schema> } }, schema: Schema | undefined, where: string, parent = '', seen: ReadonlySet<string> = new Set()): FoundAmount[] {
  if (schema === undefined) return [];
  if (schema.$ref !== undefined) {
    const name = schema.$ref.replace('#/components/schemas/', '');
    const target = document.components.schemas[name];
    // A reference to nothing would hide its amounts: the walk says so instead of passing.
    if (target === undefined) throw new Error(`${where}: unresolved ${schema.$ref}`);
    return seen.has(name) ? [] : creditAmounts(document, target, `${where}(${name})`, parent, new Set([...seen, name]));
  }
  const found: FoundAmount[] = [];
  for (const branch of [...(schema.anyOf ?? []), ...(schema.oneOf ?? []), ...(schema.allOf ?? [])]) found.push(...creditAmounts(document, branch, where, parent, seen));
  if (schema.items !== undefined) found.push(...creditAmounts(document, schema.items, `${where}[]`, parent, seen));
  if (typeof schema.additionalProperties === 'object') found.push(...creditAmounts(document, schema.additionalProperties, `${where}{}`, parent, seen));
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    const at = `${where}.${name}`;
    const types = [property.type ?? []].flat();
    if (types.includes('string') && (CREDIT_AMOUNT_NAMES.has(name) || /BySource$/.test(parent))) found.push({ where: at, pattern: property.pattern });
    found.push(...creditAmounts(document, property, at, name, seen));
  }
  return found;
}

describe('credit amounts across the whole OpenAPI document', () => {
  // The committed document: test/e2e/openApiDocument.e2e.spec.ts fails unless it is the one the
  // main job serves, so a schema that loses its pattern fails one of the two.
  const document = JSON.parse(readFileSync(path.join(__dirname, '..', '..', '..', 'docs', 'openapi.json'), 'utf8')) as {
    components: { schemas: Record<string, Schema> };
    paths: Record<string, Record<string, { responses?: Record<string, { content?: Record<string, { schema?: Schema }> }> }>>;
    webhooks: Record<string, Record<string, { requestBody?: { content?: Record<string, { schema?: Schema }> } }>>;
  };
  const found = [
    ...Object.entries(document.paths).flatMap(([route, item]) =>
      Object.entries(item).flatMap(([method, operation]) =>
        Object.entries(operation.responses ?? {}).flatMap(([status, response]) =>
          Object.values(response.content ?? {}).flatMap((content) => creditAmounts(document, content.schema, `${method.toUpperCase()} ${route} ${status}`)),
        ),
      ),
    ),
    // What Tally POSTs to webhook endpoints is an answer too, to a different asker.
    ...Object.entries(document.webhooks).flatMap(([event, item]) =>
      Object.values(item).flatMap((operation) => Object.values(operation.requestBody?.content ?? {}).flatMap((content) => creditAmounts(document, content.schema, `webhook ${event}`))),
    ),
  ];

  it('finds the amounts it is meant to check (the walk cannot pass by finding none)', () => {
    const places = found.map(({ where }) => where);
    for (const expected of [
      'GET /v1/credit-balances/{balanceId} 200(CreditBalance).lowBalanceThreshold',
      'GET /v1/customers/{customerId}/entitlements/{productId} 200.available',
      'GET /v1/credit-balances/{balanceId}/consumption 200.items[].credits',
      'GET /v1/customers/{customerId}/purchase-options 200.items[].bundles[].credits',
      'GET /v1/plans/{planId} 200.items[].creditsPerPeriod',
      'GET /v1/subscriptions/{subscriptionId} 200.overrides[].lowBalanceThreshold',
      'GET /v1/credit-balances/{balanceId}/statement 200.toppedUpBySource.purchase',
      'GET /v1/credit-balances/{balanceId} 4XX(Error).available',
      'webhook credit_balance.low.data.balance.available',
    ]) {
      expect(places).toContain(expected);
    }
  });

  it('states every one with SIGNED_CREDITS_PATTERN', () => {
    // Named once per schema: a shared component's amount (Error's, CreditBalance's) by the component, not by each route.
    const unstated = found.filter(({ pattern }) => pattern !== SIGNED_CREDITS_PATTERN).map(({ where }) => (where.includes('(') ? where.slice(where.lastIndexOf('(')) : where));
    expect([...new Set(unstated)]).toEqual([]);
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
