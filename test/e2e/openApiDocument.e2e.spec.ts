import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import type { OpenAPIV3_1 } from 'openapi-types';
import { startWholeMainJob, type WholeMainJob } from '@tally/test-support';

/**
 * docs/openapi.json is the API's contract as clients generate their code from it: the document
 * the main job serves at /docs/json with every role and the console on, so every route is in it.
 * A change of a route's schema that is not written there fails here; with TALLY_UPDATE_OPENAPI=1
 * the test writes the served document instead, and the diff shows the change a reviewer reads.
 */
jest.setTimeout(120_000);

const COMMITTED = path.join(__dirname, '..', '..', 'docs', 'openapi.json');

/** Two-space JSON and a final newline, as the committed file is written. */
function formatted(document: unknown): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}

describe("the main job's OpenAPI document", () => {
  let job: WholeMainJob | undefined;
  let served: OpenAPIV3_1.Document;

  beforeAll(async () => {
    job = await startWholeMainJob({
      prefix: 'openapi_e2e',
      apiKey: 'openapi-document-test-key',
      // The console's and the portal's session routes are served only with a secret.
      env: { TALLY_SESSION_SECRET: randomUUID() + randomUUID() },
    });
    const response = await fetch(`${job.base}/docs/json`);
    expect(response.status).toBe(200);
    served = (await response.json()) as OpenAPIV3_1.Document;
    if (process.env.TALLY_UPDATE_OPENAPI === '1') writeFileSync(COMMITTED, formatted(served));
  });

  afterAll(async () => {
    await job?.stop();
  });

  it('is the one committed at docs/openapi.json (TALLY_UPDATE_OPENAPI=1 writes it)', () => {
    const text = readFileSync(COMMITTED, 'utf8');
    // Named by part first (each path, then the document's other sections), so a failure says
    // which routes changed rather than printing two 400 KB strings.
    const committed = JSON.parse(text) as Record<string, unknown> & { paths?: Record<string, unknown> };
    const parts = (document: Record<string, unknown> & { paths?: Record<string, unknown> }): Map<string, string> =>
      new Map([
        ...Object.entries(document.paths ?? {}).map(([route, item]) => [`paths ${route}`, JSON.stringify(item)] as const),
        ...Object.entries(document)
          .filter(([key]) => key !== 'paths')
          .map(([key, value]) => [key, JSON.stringify(value)] as const),
      ]);
    const [now, before] = [parts(served as never), parts(committed)];
    const changed = [...new Set([...now.keys(), ...before.keys()])].filter((part) => now.get(part) !== before.get(part));
    expect({ changed, update: 'TALLY_UPDATE_OPENAPI=1 npx jest test/e2e/openApiDocument --selectProjects integration' }).toEqual({ changed: [], update: expect.any(String) });
    expect(formatted(served)).toBe(text);
  });

  it('is a valid OpenAPI 3.1 document whose references all resolve', async () => {
    expect(served.openapi).toMatch(/^3\.1\./);
    // validate() dereferences a copy: a reference to nothing, or a schema OpenAPI forbids, throws.
    await expect(SwaggerParser.validate(structuredClone(served) as never)).resolves.toBeDefined();
  });

  it('has every route, each with its own operation id (what generated clients name their methods) and, under /v1, its scope', () => {
    // The routes and, under `webhooks`, what Tally POSTs per event type: generators name both.
    // Tally's document has no $ref for a whole path item: each is the item itself.
    const items = [...Object.entries(served.paths ?? {}), ...Object.entries(served.webhooks ?? {})] as Array<[string, OpenAPIV3_1.PathItemObject | undefined]>;
    const operations = items.flatMap(([route, item]) =>
      (['get', 'post', 'put', 'patch', 'delete'] as const).flatMap((method) => {
        const operation = item?.[method];
        return operation === undefined ? [] : [{ route, method, operation: operation as OpenAPIV3_1.OperationObject & { 'x-tally-scope'?: string } }];
      }),
    );
    const routes = new Set(operations.map(({ route }) => route));
    // A route of each optional part of the API: usage ingestion, plans, webhooks, dead letters,
    // processors, the console's sessions and the portal's links.
    for (const route of [
      '/v1/usage-events',
      '/v1/plans',
      '/v1/webhook-endpoints',
      '/v1/dead-letters',
      '/v1/processors',
      '/v1/console-sessions',
      '/v1/customers/{customerId}/portal-sessions',
      '/v1/credit-balances/{balanceId}/statement',
    ]) {
      expect(routes).toContain(route);
    }
    const ids = operations.map(({ operation }) => operation.operationId);
    expect(ids.filter((id) => id === undefined || !/^[a-z][A-Za-z]+$/.test(id))).toEqual([]);
    expect(new Set(ids).size).toBe(ids.length);
    const versioned = operations.filter(({ route }) => route.startsWith('/v1/'));
    expect(versioned.length).toBeGreaterThan(50);
    expect(ids).toContain('creditBalanceToppedUpWebhook');
    expect(versioned.filter(({ operation }) => operation['x-tally-scope'] === undefined).map(({ route, method }) => `${method} ${route}`)).toEqual([]);
  });
});
