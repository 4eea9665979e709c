/**
 * Scenario 6: the HTTP API under a fuzz run of malformed and hostile requests against every
 * route its OpenAPI document lists, from concurrent clients. Only 4xx may come back: never a
 * 5xx, never a 2xx to a malformed request, never a dropped connection, never a crash; no /v1
 * route answers without a valid key; and nothing a fuzz request did may show in any balance.
 */
import { formatCredits } from '@tally/domain';
import { runFuzzCases, type FuzzOutcome } from './runFuzzCases';
import { badAuthorizations, createFuzzCase, rawProtocolCases, routesOf, unstorableTextCases, type FuzzCase } from './apiFuzzCases';
import { faultScale } from './faultScale';
import { createFaultWorld, type FaultWorld } from './faultWorld';
import { finishScenario } from './finishScenario';

const CUSTOMERS = ['fuzz-customer-0', 'fuzz-customer-1', 'fuzz-customer-2'];
/** Routes the issue leaves open on purpose: health, metrics and the API's own documentation. */
const PUBLIC = /^\/(health|metrics|docs)(\/|$)/;

describe('fault: HTTP API fuzz', () => {
  let world: FaultWorld | undefined;

  afterAll(async () => {
    await world?.close();
  });

  it(`answers ${faultScale.apiFuzz.requests} malformed and hostile requests with 4xx only`, async () => {
    const startedAt = Date.now();
    world = await createFaultWorld('api_fuzz');
    const { model, random, api } = world;
    const tally = await world.startTally('api', ['projector', 'api']);
    await world.openCatalog(CUSTOMERS);
    const port = Number(new URL(api.baseUrl).port);
    const balance = model.balances()[0]!;
    const differences: string[] = [];

    const documentResponse = await api.request({ method: 'GET', path: '/docs/json', auth: false });
    const routes = routesOf(documentResponse.body as Parameters<typeof routesOf>[0]);
    const versioned = routes.filter((route) => route.path.startsWith('/v1/'));
    const publicRoutes = routes.filter((route) => !route.path.startsWith('/v1/'));
    for (const route of publicRoutes) if (!PUBLIC.test(route.path)) differences.push(`${route.method} ${route.path} is outside /v1, so it takes no key`);
    const realIds = { balanceId: balance.balanceId, productId: balance.productId, customerId: balance.customerId };

    // No route answers without a valid key, however right the rest of the request is: every
    // documented /v1 operation, with real ids and a body, under every wrong Authorization.
    const sweep: FuzzCase[] = versioned.flatMap((route) =>
      badAuthorizations(api.apiKey).map((headers, variant) => {
        const path = route.pathParams.reduce((filled, { name }) => filled.replace(`{${name}}`, realIds[name as keyof typeof realIds] ?? 'fuzz-missing'), route.path);
        const body = route.hasBody ? { body: JSON.stringify({ credits: '1', productId: 'compute', name: 'x' }) } : {};
        return {
          kind: `auth-${variant}`,
          route: `${route.method} ${route.path}`,
          request: { method: route.method, path, headers: [...headers, ['Content-Type', 'application/json'] as const, ['Idempotency-Key', `sweep-${variant}`] as const], ...body },
        };
      }),
    );
    const sweepOutcome = await runFuzzCases(port, sweep, 8);
    for (const { fuzz, response } of sweepOutcome.results) {
      if (response.status !== 401) differences.push(`${fuzz.route} (${fuzz.kind}) answered ${response.status ?? response.error} without a valid key`);
    }

    const fuzzCases = [
      ...rawProtocolCases(api.apiKey),
      ...unstorableTextCases(api.apiKey, realIds),
      ...Array.from({ length: faultScale.apiFuzz.requests }, (_, n) => createFuzzCase({ random, routes: versioned, apiKey: api.apiKey, realIds }, n)),
    ];
    const outcome: FuzzOutcome = await runFuzzCases(port, fuzzCases, 16);
    for (const { fuzz, response } of outcome.results) {
      const { status } = response;
      const ok = status !== undefined ? status >= 400 && status < 500 : fuzz.mayReset === true;
      if (!ok) {
        differences.push(`${fuzz.kind} ${fuzz.request.method} ${fuzz.request.path.slice(0, 120)} (${fuzz.route}) answered ${status ?? response.error}`);
      }
    }
    const unexpected = tally.current().lines.filter((line) => line.includes('request failed unexpectedly'));
    differences.push(...unexpected.slice(0, 3).map((line) => `the API logged an unexpected failure: ${line.slice(0, 400)}`));

    // Still serving, and still right: a valid read after the run.
    const after = await api.getBalance(balance.balanceId);
    if (after.status !== 200 || (after.body as { balance?: string }).balance !== formatCredits(model.expectedBalance(balance.balanceId))) {
      differences.push(`after the fuzz run the API answers ${after.status} ${JSON.stringify(after.body)}`);
    }

    const report = await finishScenario(world, {
      scenario: 'api-fuzz',
      startedAt,
      events: { requests: fuzzCases.length, authSweep: sweep.length, routes: routes.length },
      faults: { malformedRequest: fuzzCases.length, badKey: sweep.length },
      recoveriesMs: [],
      differences,
      extra: { statuses: outcome.statuses, kinds: outcome.kinds, publicRoutes: publicRoutes.map((route) => `${route.method} ${route.path}`), durationOfRunMs: outcome.durationMs },
    });
    expect(report.firstDifferences).toEqual([]);
    expect(report.differences).toBe(0);
  });
});
