import type { ApiErrorBody, Health, Page } from './apiTypes';

/** A refusal of the API: its status and `{ error, message }`, as every 4xx and 5xx answers, and the whole body for what some carry beside them. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body: Partial<ApiErrorBody> = {},
  ) {
    super(message);
  }
}

/** The statuses after which the same call may succeed later unchanged: the service, or a proxy in front of it, was busy or down. */
const TRANSIENT_STATUSES: readonly number[] = [429, 502, 503, 504];

/** No answer at all (fetch's TypeError: offline, DNS, a refused connection): the same call may succeed later. */
export class ServiceUnreachableError extends Error {
  constructor(failure: TypeError) {
    // The browser's own words stay as the cause, for a debugger; the page shows this sentence.
    super('Could not reach the service. Check the connection.', { cause: failure });
  }
}

/**
 * What an answer without the API's JSON body says (a proxy's HTML page, an empty refusal): its
 * status in words, not a JSON parse error of the page. A 2xx is one too: a proxy's or a captive
 * portal's page answered in the API's place.
 */
function statusSentence(status: number): string {
  if (TRANSIENT_STATUSES.includes(status)) return `${status === 429 ? 'Too many requests' : 'The service is unavailable'} (${status}). Try again in a moment.`;
  if (status >= 500) return `The service failed (${status}).`;
  if (status < 300) return `The service answered with something other than the API (${status}).`;
  return `The service refused the request (${status}).`;
}

/** A body that says it is JSON (the API's answers all do) and parses; undefined for anything else, a body that claims JSON and is not included. */
function jsonOf(response: Response, text: string): { readonly json: unknown } | undefined {
  if (!/^application\/(?:[\w.+-]+\+)?json\b/i.test(response.headers.get('content-type') ?? '')) return undefined;
  try {
    return { json: JSON.parse(text) };
  } catch {
    return undefined;
  }
}

/** The API's `{ error, message }` when the body is JSON and says so; undefined for anything else. */
async function refusalBody(response: Response): Promise<Partial<ApiErrorBody> | undefined> {
  const body = jsonOf(response, await response.text())?.json;
  return typeof body === 'object' && body !== null && typeof (body as ApiErrorBody).message === 'string' ? (body as Partial<ApiErrorBody>) : undefined;
}

/** An answer's JSON (a 2xx, or a status the call takes as an answer: /health's 503); anything else throws in words of its status, as a refusal does. */
function answerOf(response: Response, text: string): unknown {
  const read = jsonOf(response, text);
  if (read === undefined) throw new ApiError(response.status, 'error', statusSentence(response.status));
  return read.json;
}

/** How the page proves who it is: the console's session cookie (with its CSRF token on writes), or a portal token. */
export type Credential = { readonly kind: 'session'; readonly csrfToken: () => string | undefined } | { readonly kind: 'bearer'; readonly token: string };

export interface RequestOptions {
  readonly query?: Readonly<Record<string, string | undefined>>;
  readonly body?: unknown;
  /** Sent as Idempotency-Key: the same key for a retried or double-clicked write changes the balance once. */
  readonly idempotencyKey?: string;
  /** Sent as If-Match: the version read (an ETag, quoted), so the write changes only that version and a later one is refused (412). */
  readonly ifMatch?: string;
}

export interface ApiClient {
  get<T>(path: string, options?: RequestOptions): Promise<T>;
  post<T>(path: string, options?: RequestOptions): Promise<T>;
  patch<T>(path: string, options?: RequestOptions): Promise<T>;
  put<T>(path: string, options?: RequestOptions): Promise<T>;
  delete(path: string): Promise<void>;
  /** A GET whose answer is a file (the ledger's CSV), as a Blob to save. */
  download(path: string, options?: RequestOptions): Promise<Blob>;
  /** GET /health, outside /v1: its answer whether up (200) or down (503), which is news, not a failure. */
  health(): Promise<Health>;
}

/**
 * Every item of a list, a page of 500 (the most a list answers) after another, each `next` passed
 * back as `after`: for a choice or a list the page shows whole (a form's products, a customer's
 * subscriptions), so the 501st is there too. Lists paged on screen use the console's pager instead.
 */
export async function everyItem<T>(api: Pick<ApiClient, 'get'>, listPath: string, query: Readonly<Record<string, string>> = {}): Promise<T[]> {
  const items: T[] = [];
  let after: string | undefined;
  do {
    const page = await api.get<Page<T>>(listPath, { query: { ...query, limit: '500', after } });
    items.push(...page.items);
    after = page.next ?? undefined;
  } while (after !== undefined);
  return items;
}

/** Path segments are encoded here, so ids with any characters reach the route they name. */
export function path(strings: TemplateStringsArray, ...values: string[]): string {
  return strings.reduce((text, part, index) => text + part + (index < values.length ? encodeURIComponent(values[index]!) : ''), '');
}

/** The same public /v1 API a script would call: everything the pages do can be done with curl. */
export function createApiClient(credential: Credential, onUnauthorized?: () => void): ApiClient {
  /** `okStatuses`: refusals that are answers for this call (GET /health's 503). */
  async function send(method: string, pathname: string, options: RequestOptions, accept: string, okStatuses: readonly number[] = []): Promise<Response> {
    const headers: Record<string, string> = { accept };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
    if (options.ifMatch !== undefined) headers['if-match'] = options.ifMatch;
    if (credential.kind === 'bearer') headers.authorization = `Bearer ${credential.token}`;
    else if (method !== 'GET') {
      const csrf = credential.csrfToken();
      if (csrf !== undefined) headers['x-csrf-token'] = csrf;
    }
    const query = Object.entries(options.query ?? {}).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== '');
    const target = `${pathname}${query.length > 0 ? `?${new URLSearchParams(query).toString()}` : ''}`;
    let response: Response;
    try {
      response = await fetch(target, {
        method,
        headers,
        credentials: 'same-origin',
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      });
    } catch (failure) {
      // fetch rejects with a TypeError ("Failed to fetch") when nothing answered at all.
      throw failure instanceof TypeError ? new ServiceUnreachableError(failure) : failure;
    }
    if (!response.ok && !okStatuses.includes(response.status)) {
      // The API's refusals are JSON; what a proxy in front of it answers (502, an HTML page) may not be.
      const error = await refusalBody(response);
      if (response.status === 401) onUnauthorized?.();
      throw new ApiError(response.status, error?.error ?? 'error', error?.message ?? statusSentence(response.status), error ?? {});
    }
    return response;
  }
  async function request<T>(method: string, url: string, options: RequestOptions = {}): Promise<T> {
    const response = await send(method, `/v1${url}`, options, 'application/json');
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    return (text === '' ? undefined : answerOf(response, text)) as T;
  }
  return {
    get: (url, options) => request('GET', url, options),
    post: (url, options) => request('POST', url, options),
    patch: (url, options) => request('PATCH', url, options),
    put: (url, options) => request('PUT', url, options),
    delete: (url) => request('DELETE', url),
    download: async (url, options = {}) => (await send('GET', `/v1${url}`, options, '*/*')).blob(),
    health: async () => {
      const response = await send('GET', '/health', {}, 'application/json', [503]);
      // Only the API's own 503 is news of what is down: a load balancer's HTML 503 is a failure.
      return answerOf(response, await response.text()) as Health;
    },
  };
}

/** What a failed call says, for a page to show: the API's message, or the error's. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Which field a validation message is about, as the form names it (`bundles.0.price.currency`):
 * the API says `body.bundles.0.price.currency ...`, the domain `bundles[0].credits ...`, and a
 * missing property is "body must have required property 'name'". Each sentence of the message
 * (they are joined with "; ") goes to its field when the form has it, else to the form as a whole.
 */
export function fieldErrors(error: unknown, hasField: (field: string) => boolean): { readonly fields: Record<string, string>; readonly general: string | undefined } {
  if (!(error instanceof ApiError)) return { fields: {}, general: errorMessage(error) };
  const fields: Record<string, string> = {};
  const general: string[] = [];
  for (const sentence of error.message.split('; ')) {
    const required = /^body((?:\.\w+)*) must have required property '(\w+)'/.exec(sentence);
    const named = /^(?:body\.)?([A-Za-z][\w.[\]]*)\s(.*)$/.exec(sentence);
    const field = required !== null ? `${required[1]!.slice(1)}${required[1] ? '.' : ''}${required[2]}` : named?.[1]?.replace(/\[(\d+)\]/g, '.$1');
    if (field !== undefined && hasField(field)) fields[field] = required !== null ? 'is required' : named![2]!;
    else general.push(sentence);
  }
  return { fields, general: general.length > 0 ? general.join('; ') : undefined };
}

/**
 * A new Idempotency-Key for one intended change (one dialog opening), kept across its retries;
 * also the id of a thing to make where the API takes one (a subscription), for the same reason.
 */
export function newIdempotencyKey(): string {
  return crypto.randomUUID();
}
