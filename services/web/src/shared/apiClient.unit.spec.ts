import { ApiError, createApiClient, errorMessage, everyItem, ServiceUnreachableError } from './apiClient';

/**
 * What a page is told when a call fails, with fetch answering as a proxy or a dead network
 * would: the client alone, no server (the browser tests hold the pages that show it).
 */
describe("the API client's failures", () => {
  const realFetch = globalThis.fetch;
  afterEach(() => {
    globalThis.fetch = realFetch;
  });
  const answering = (response: () => Response | Promise<Response>) => {
    globalThis.fetch = (async () => response()) as typeof fetch;
  };
  const client = () => createApiClient({ kind: 'bearer', token: 't' });
  const failure = async (call: Promise<unknown>) => call.then(
    () => {
      throw new Error('the call succeeded');
    },
    (error: unknown) => error,
  );

  it("says the API's own refusal, its code and status", async () => {
    answering(() => new Response(JSON.stringify({ error: 'insufficient_credits', message: 'the balance is 3 credits' }), { status: 402, headers: { 'content-type': 'application/json; charset=utf-8' } }));
    const error = await failure(client().get('/x'));
    expect(error).toBeInstanceOf(ApiError);
    expect({ status: (error as ApiError).status, code: (error as ApiError).code, message: errorMessage(error) }).toEqual({
      status: 402,
      code: 'insufficient_credits',
      message: 'the balance is 3 credits',
    });
  });

  it("says a proxy's HTML error page in words of its status, never as a JSON parse error", async () => {
    for (const [status, said] of [
      [502, 'The service is unavailable (502). Try again in a moment.'],
      [503, 'The service is unavailable (503). Try again in a moment.'],
      [504, 'The service is unavailable (504). Try again in a moment.'],
      [500, 'The service failed (500).'],
      [429, 'Too many requests (429). Try again in a moment.'],
      [413, 'The service refused the request (413).'],
    ] as const) {
      answering(() => new Response('<html><body><h1>Bad Gateway</h1></body></html>', { status, headers: { 'content-type': 'text/html' } }));
      const error = await failure(client().post('/x', { body: {} }));
      expect({ status, error: error instanceof ApiError, message: errorMessage(error) }).toEqual({ status, error: true, message: said });
    }
  });

  it('says the status where a body claims JSON and is not, or is empty', async () => {
    answering(() => new Response('<html>oops</html>', { status: 502, headers: { 'content-type': 'application/json' } }));
    expect(errorMessage(await failure(client().get('/x')))).toBe('The service is unavailable (502). Try again in a moment.');
    answering(() => new Response(null, { status: 503 }));
    expect(errorMessage(await failure(client().get('/x')))).toBe('The service is unavailable (503). Try again in a moment.');
  });

  it("says a proxy's HTML 503 on /health in words of its status, never as a JSON parse error", async () => {
    answering(() => new Response('<html><body><h1>503 Service Unavailable</h1></body></html>', { status: 503, headers: { 'content-type': 'text/html' } }));
    const error = await failure(client().health());
    expect({ error: error instanceof ApiError, status: (error as ApiError).status, message: errorMessage(error) }).toEqual({
      error: true,
      status: 503,
      message: 'The service is unavailable (503). Try again in a moment.',
    });
  });

  it("still reads /health's own 503, the API's JSON saying what is down", async () => {
    answering(() => new Response(JSON.stringify({ status: 'down', checks: { redis: 'down' } }), { status: 503, headers: { 'content-type': 'application/json' } }));
    expect(await client().health()).toEqual({ status: 'down', checks: { redis: 'down' } });
  });

  it("says a proxy's HTML page answered with 200 in words of its status, never as a JSON parse error", async () => {
    answering(() => new Response('<html><body>Please sign in to the network</body></html>', { status: 200, headers: { 'content-type': 'text/html' } }));
    const error = await failure(client().get('/x'));
    expect({ error: error instanceof ApiError, status: (error as ApiError).status, message: errorMessage(error) }).toEqual({
      error: true,
      status: 200,
      message: 'The service answered with something other than the API (200).',
    });
  });

  it('says the service could not be reached when nothing answers', async () => {
    globalThis.fetch = (async () => {
      throw new TypeError('Failed to fetch');
    }) as typeof fetch;
    for (const call of [() => client().get('/x'), () => client().download('/x'), () => client().health()]) {
      const error = await failure(call());
      expect({ unreachable: error instanceof ServiceUnreachableError, message: errorMessage(error) }).toEqual({
        unreachable: true,
        message: 'Could not reach the service. Check the connection.',
      });
    }
  });

  it('still tells the page of a 401, whatever its body', async () => {
    let told = 0;
    globalThis.fetch = (async () => new Response('<html>401</html>', { status: 401, headers: { 'content-type': 'text/html' } })) as typeof fetch;
    const error = await failure(createApiClient({ kind: 'bearer', token: 't' }, () => (told += 1)).get('/x'));
    expect({ told, status: (error as ApiError).status }).toEqual({ told: 1, status: 401 });
  });
});

describe('every item of a list', () => {
  it('reads page after page (500 each, the most a list answers) until the last, passing each `next` as `after`', async () => {
    const asked: URLSearchParams[] = [];
    const pages: Record<string, { items: number[]; next: string | null }> = {
      '': { items: [1, 2], next: 'b' },
      b: { items: [3], next: 'c' },
      c: { items: [4], next: null },
    };
    const api = {
      get: async <T,>(path: string, options?: { query?: Readonly<Record<string, string | undefined>> }): Promise<T> => {
        expect(path).toBe('/plans');
        const query = new URLSearchParams(Object.entries(options?.query ?? {}).filter((entry): entry is [string, string] => entry[1] !== undefined));
        asked.push(query);
        return pages[query.get('after') ?? ''] as T;
      },
    };
    expect(await everyItem<number>(api, '/plans', { status: 'active' })).toEqual([1, 2, 3, 4]);
    expect(asked.map((query) => query.toString())).toEqual(['status=active&limit=500', 'status=active&limit=500&after=b', 'status=active&limit=500&after=c']);
  });
});
