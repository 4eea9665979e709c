import { setTimeout as delay } from 'node:timers/promises';
import type { ModelProduct } from './creditModel';

export interface ApiResponse {
  readonly status: number;
  /** Parsed JSON, or the raw text when the body is not JSON. */
  readonly body: unknown;
  readonly headers: Headers;
}

export interface ApiRequest {
  readonly method: string;
  /** Path and query, sent as given (no normalisation), e.g. `/v1/credit-balances/..%2F`. */
  readonly path: string;
  /** An object is sent as JSON; a string or Buffer as is. */
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  /** false: no Authorization header; a string: that header value instead of the valid key. */
  readonly auth?: boolean | string;
  readonly timeoutMs?: number;
}

export interface BalanceBody {
  readonly id: string;
  readonly balance: string;
  readonly position: string;
}

/**
 * The fault suite's HTTP client for one Tally API. Writes that must happen whatever the faults
 * (opening the catalog, top-ups) retry through refused connections and 503s, always with the
 * same Idempotency-Key, so a request whose answer was lost when the API died counts once.
 */
export interface TallyApiClient {
  readonly baseUrl: string;
  readonly apiKey: string;
  request(request: ApiRequest): Promise<ApiResponse>;
  createProduct(product: ModelProduct): Promise<void>;
  openBalance(customerId: string, productId: string, startingBalance: string): Promise<string>;
  /** Resolves once the top-up is stored (201), however many attempts that took; returns the attempts. */
  topUp(balanceId: string, credits: string, idempotencyKey: string, deadlineMs?: number): Promise<number>;
  getBalance(balanceId: string, options?: { consistent?: boolean }): Promise<ApiResponse>;
  /** Places a hold, retrying with its Idempotency-Key until the answer is 201 or 402; returns that answer. */
  placeHold(balanceId: string, idempotencyKey: string, body: { credits: string; expiresInSeconds: number }, deadlineMs?: number): Promise<ApiResponse>;
  /** Captures (with `credits`) or releases a hold, retrying the same request until the answer is 200 or 409. */
  endHold(holdId: string, action: 'capture' | 'release', body: Readonly<Record<string, string>>, deadlineMs?: number): Promise<ApiResponse>;
  /** Every answer or failure that made a persistent write retry, by HTTP status or error name: what clients saw during faults. */
  retried(): Readonly<Record<string, number>>;
}

/**
 * A failure a retry may get past: the API is down, restarting, or a dependency is. A 500 is
 * retried too (with the same key that is safe) so that the load goes on, and it is counted:
 * scenarios report a 500 as a difference, since a dependency outage must answer 503.
 */
function isRetriable(error: unknown, status?: number): boolean {
  if (status !== undefined) return status >= 500;
  // By shape, not instanceof: fetch's errors come from Node's realm, not jest's.
  const { name, message, cause } = (typeof error === 'object' && error !== null ? error : {}) as { name?: unknown; message?: unknown; cause?: unknown };
  return name === 'TimeoutError' || name === 'AbortError' || /fetch failed|ECONNREFUSED|ECONNRESET|socket/i.test(`${String(message)} ${String(cause)}`);
}

export function createTallyApiClient({ baseUrl, apiKey }: { baseUrl: string; apiKey: string }): TallyApiClient {
  const retried: Record<string, number> = {};
  const count = (what: string) => {
    retried[what] = (retried[what] ?? 0) + 1;
  };
  async function request({ method, path, body, headers = {}, auth = true, timeoutMs = 15_000 }: ApiRequest): Promise<ApiResponse> {
    const sent: Record<string, string> = { ...headers };
    if (auth === true) sent.authorization = `Bearer ${apiKey}`;
    else if (typeof auth === 'string') sent.authorization = auth;
    let payload: string | Buffer | undefined;
    if (typeof body === 'string' || Buffer.isBuffer(body)) payload = body;
    else if (body !== undefined) {
      payload = JSON.stringify(body);
      sent['content-type'] ??= 'application/json';
    }
    const response = await fetch(`${baseUrl}${path}`, { method, headers: sent, body: payload, signal: AbortSignal.timeout(timeoutMs) });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      // Not JSON (e.g. the /docs page): the text itself is the body.
    }
    return { status: response.status, body: parsed, headers: response.headers };
  }

  /** Sends until an answer that is not a retriable failure arrives, or the deadline passes. */
  async function persist(
    what: string,
    make: () => ApiRequest,
    expected: number | readonly number[],
    deadlineMs: number,
  ): Promise<{ response: ApiResponse; attempts: number }> {
    const accepted = typeof expected === 'number' ? [expected] : expected;
    const deadline = Date.now() + deadlineMs;
    let attempts = 0;
    let last = '';
    for (let backoffMs = 100; ; backoffMs = Math.min(backoffMs * 2, 1000)) {
      attempts += 1;
      let response: ApiResponse | undefined;
      try {
        response = await request(make());
      } catch (error) {
        if (!isRetriable(error)) throw error;
        // undici reports a refused or reset connection as a TypeError "fetch failed".
        const name = (error as { name?: unknown }).name;
        count(typeof name === 'string' && name !== 'TypeError' ? name : 'connection failed');
        last = String(error);
      }
      if (response !== undefined) {
        if (accepted.includes(response.status)) return { response, attempts };
        if (!isRetriable(undefined, response.status)) throw new Error(`${what}: HTTP ${response.status} ${JSON.stringify(response.body)}`);
        count(String(response.status));
        last = `HTTP ${response.status} ${JSON.stringify(response.body)}`;
      }
      if (Date.now() + backoffMs > deadline) throw new Error(`${what}: gave up after ${attempts} attempts in ${deadlineMs} ms; last: ${last}`);
      await delay(backoffMs);
    }
  }

  return {
    baseUrl,
    apiKey,
    request,
    async createProduct(product) {
      const body = { id: product.id, name: product.name, consumption: product.consumption, lowBalanceThreshold: product.lowBalanceThreshold };
      await persist(`create product ${product.id}`, () => ({ method: 'POST', path: '/v1/credit-products', body }), 201, 60_000);
    },
    async openBalance(customerId, productId, startingBalance) {
      const { response } = await persist(
        `open ${productId} for ${customerId}`,
        () => ({ method: 'POST', path: `/v1/customers/${encodeURIComponent(customerId)}/credit-balances`, body: { productId, startingBalance } }),
        201,
        60_000,
      );
      return (response.body as BalanceBody).id;
    },
    async topUp(balanceId, credits, idempotencyKey, deadlineMs = 120_000) {
      const { attempts } = await persist(
        `top-up ${idempotencyKey}`,
        () => ({
          method: 'POST',
          path: `/v1/credit-balances/${encodeURIComponent(balanceId)}/top-ups`,
          headers: { 'idempotency-key': idempotencyKey },
          body: { credits, reason: `fault suite ${idempotencyKey}` },
        }),
        201,
        deadlineMs,
      );
      return attempts;
    },
    getBalance(balanceId, { consistent = false } = {}) {
      return request({ method: 'GET', path: `/v1/credit-balances/${encodeURIComponent(balanceId)}${consistent ? '?consistent=true' : ''}`, timeoutMs: 30_000 });
    },
    async placeHold(balanceId, idempotencyKey, body, deadlineMs = 120_000) {
      const { response } = await persist(
        `hold ${idempotencyKey}`,
        () => ({ method: 'POST', path: `/v1/credit-balances/${encodeURIComponent(balanceId)}/holds`, headers: { 'idempotency-key': idempotencyKey }, body }),
        [201, 402],
        deadlineMs,
      );
      return response;
    },
    async endHold(holdId, action, body, deadlineMs = 120_000) {
      const { response } = await persist(
        `${action} ${holdId}`,
        () => ({ method: 'POST', path: `/v1/holds/${encodeURIComponent(holdId)}/${action}`, body }),
        [200, 409],
        deadlineMs,
      );
      return response;
    },
    retried: () => ({ ...retried }),
  };
}
