import { readFileSync } from 'node:fs';
import path from 'node:path';
import { creditProductFromDto, creditProductToDto, formatCredits } from '@tally/domain';
import { MAX_PURCHASE_QUANTITY, totalPrice } from '@tally/ledger';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify from 'fastify';
import { CURRENCY_PATTERN, ErrorSchema, PRICE_AMOUNT_PATTERN, SIGNED_CREDITS_PATTERN, TOTAL_PRICE_PATTERN } from './apiSchemas';
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

/** Whether a string property `name` (of an object that is property `parent`) is an amount of the kind looked for. */
type AmountNamed = (name: string, parent: string) => boolean;

const isCreditAmount: AmountNamed = (name, parent) => CREDIT_AMOUNT_NAMES.has(name) || /BySource$/.test(parent);

/** Every string property of `schema` named as an amount (`named`), following $refs into components (each once per path). */
function amountsIn(
  document: { components: { schemas: Record<string, Schema> } },
  named: AmountNamed,
  schema: Schema | undefined,
  where: string,
  parent = '',
  seen: ReadonlySet<string> = new Set(),
): FoundAmount[] {
  const creditAmounts = (next: Schema | undefined, at: string, parentName: string, seenNow: ReadonlySet<string>) => amountsIn(document, named, next, at, parentName, seenNow);
  if (schema === undefined) return [];
  if (schema.$ref !== undefined) {
    const name = schema.$ref.replace('#/components/schemas/', '');
    const target = document.components.schemas[name];
    // A reference to nothing would hide its amounts: the walk says so instead of passing.
    if (target === undefined) throw new Error(`${where}: unresolved ${schema.$ref}`);
    return seen.has(name) ? [] : creditAmounts(target, `${where}(${name})`, parent, new Set([...seen, name]));
  }
  const found: FoundAmount[] = [];
  for (const branch of [...(schema.anyOf ?? []), ...(schema.oneOf ?? []), ...(schema.allOf ?? [])]) found.push(...creditAmounts(branch, where, parent, seen));
  if (schema.items !== undefined) found.push(...creditAmounts(schema.items, `${where}[]`, parent, seen));
  if (typeof schema.additionalProperties === 'object') found.push(...creditAmounts(schema.additionalProperties, `${where}{}`, parent, seen));
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    const at = `${where}.${name}`;
    const types = [property.type ?? []].flat();
    if (types.includes('string') && named(name, parent)) found.push({ where: at, pattern: property.pattern });
    found.push(...creditAmounts(property, at, name, seen));
  }
  return found;
}

// The committed document: test/e2e/openApiDocument.e2e.spec.ts fails unless it is the one the
// main job serves, so a schema that loses its pattern fails one of the two.
const document = JSON.parse(readFileSync(path.join(__dirname, '..', '..', '..', 'docs', 'openapi.json'), 'utf8')) as {
  components: { schemas: Record<string, Schema> };
  paths: Record<string, Record<string, { requestBody?: { content?: Record<string, { schema?: Schema }> }; responses?: Record<string, { content?: Record<string, { schema?: Schema }> }> }>>;
  webhooks: Record<string, Record<string, { requestBody?: { content?: Record<string, { schema?: Schema }> } }>>;
};

/** The amounts `named` in every answer of the document (and, with `requests`, every request body). */
function amountsInDocument(named: AmountNamed, options: { readonly requests?: boolean } = {}): FoundAmount[] {
  return [
    ...Object.entries(document.paths).flatMap(([route, item]) =>
      Object.entries(item).flatMap(([method, operation]) => [
        ...Object.entries(operation.responses ?? {}).flatMap(([status, response]) =>
          Object.values(response.content ?? {}).flatMap((content) => amountsIn(document, named, content.schema, `${method.toUpperCase()} ${route} ${status}`)),
        ),
        ...(options.requests === true
          ? Object.values(operation.requestBody?.content ?? {}).flatMap((content) => amountsIn(document, named, content.schema, `${method.toUpperCase()} ${route} request`))
          : []),
      ]),
    ),
    // What Tally POSTs to webhook endpoints is an answer too, to a different asker.
    ...Object.entries(document.webhooks).flatMap(([event, item]) =>
      Object.values(item).flatMap((operation) => Object.values(operation.requestBody?.content ?? {}).flatMap((content) => amountsIn(document, named, content.schema, `webhook ${event}`))),
    ),
  ];
}

/** Named once per schema: a shared component's amount (Error's, CreditBalance's) by the component, not by each route. */
const byComponent = (found: readonly FoundAmount[]) => [...new Set(found.map(({ where }) => (where.includes('(') ? where.slice(where.lastIndexOf('(')) : where)))];

describe('credit amounts across the whole OpenAPI document', () => {
  const found = amountsInDocument(isCreditAmount);

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
    expect(byComponent(found.filter(({ pattern }) => pattern !== SIGNED_CREDITS_PATTERN))).toEqual([]);
  });
});

/**
 * Prices are a currency's amounts, not credits: a bundle's price (and a purchase's unit price) as
 * the catalog takes and stores it, PRICE_AMOUNT_PATTERN; a purchase's total, unit price ×
 * quantity, TOTAL_PRICE_PATTERN. Requests and answers alike, so a client can send back what it read.
 */
describe('prices across the whole OpenAPI document', () => {
  const PRICE_NAMES: Readonly<Record<string, string>> = { amount: PRICE_AMOUNT_PATTERN, unitPrice: PRICE_AMOUNT_PATTERN, totalPrice: TOTAL_PRICE_PATTERN, currency: CURRENCY_PATTERN };
  const isPrice: AmountNamed = (name, parent) =>
    (parent === 'price' && ['amount', 'currency'].includes(name)) || (parent === 'purchase' && ['unitPrice', 'totalPrice', 'currency'].includes(name));
  const found = amountsInDocument(isPrice, { requests: true });

  it('finds the prices it is meant to check', () => {
    const places = found.map(({ where }) => where);
    for (const expected of [
      'POST /v1/credit-products request.bundles[].price.amount',
      'POST /v1/credit-balances/{balanceId}/purchases request.expected.price.amount',
      'GET /v1/credit-products/{productId} 200(CreditProduct).bundles[].price.amount',
      'GET /v1/customers/{customerId}/purchase-options 200.items[].bundles[].price.amount',
      'GET /v1/customers/{customerId}/purchase-options 200.items[].bundles[].price.currency',
      'POST /v1/credit-balances/{balanceId}/purchases 201.entry(LedgerEntry).purchase.unitPrice',
      'POST /v1/credit-balances/{balanceId}/purchases 201.entry(LedgerEntry).purchase.totalPrice',
    ]) {
      expect(places).toContain(expected);
    }
  });

  it('states each with its pattern', () => {
    const wrong = found.filter(({ where, pattern }) => pattern !== PRICE_NAMES[where.slice(where.lastIndexOf('.') + 1)]);
    expect(byComponent(wrong)).toEqual([]);
  });

  it("take every price the catalog stores and every total a purchase records, and no negative or malformed one", () => {
    const amount = new RegExp(PRICE_AMOUNT_PATTERN);
    const total = new RegExp(TOTAL_PRICE_PATTERN);
    // As the catalog stores them: the amount as given, once the domain accepted it.
    const stored = (value: string) => creditProductToDto(creditProductFromDto({ id: 'p', name: 'p', description: '', consumption: [], lowBalanceThreshold: null, bundles: [{ id: 'b', credits: '1', price: { amount: value, currency: 'EUR' } }] })).bundles[0]!.price.amount;
    for (const given of ['0', '0.00', '9.9', '9.90', '009.90', '999999999999.999999']) {
      expect(stored(given)).toMatch(amount);
      expect(totalPrice(stored(given), 1)).toMatch(total);
      expect(totalPrice(stored(given), MAX_PURCHASE_QUANTITY)).toMatch(total);
    }
    for (const refused of ['-1', '1e3', '.5', '9.', '9.1234567', '+1', ' 1', '9,90', '']) {
      expect(() => stored(refused)).toThrow(/amount/);
      expect(refused).not.toMatch(amount);
      expect(refused).not.toMatch(total);
    }
    // 13 integer digits: refused as a price, while a total (a price × the quantity) may have them.
    expect(() => stored('1234567890123')).toThrow(/amount/);
    expect('1234567890123').not.toMatch(amount);
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
