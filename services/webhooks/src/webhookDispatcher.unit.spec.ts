import fc from 'fast-check';
import pino from 'pino';
import { createWebhookDispatcher, isDelivered, mayTakeLane, outcomeOfFailure, sendsPerEndpoint, type WebhookRetryPolicy } from './webhookDispatcher';
import type { DueWebhookDelivery } from './webhookStore';

const policy = (retryForMs: number, delayMs: number): WebhookRetryPolicy => ({ retryForMs, delayAfter: () => delayMs });
const t0 = new Date('2026-11-30T12:00:00Z');
const at = (ms: number) => new Date(t0.getTime() + ms);

describe('isDelivered', () => {
  it.each([200, 201, 202, 204, 299])('counts %i as delivered', (status) => expect(isDelivered(status)).toBe(true));
  it.each([null, 100, 301, 307, 400, 410, 429, 500, 503])('counts %p as failed (redirects are not followed)', (status) => expect(isDelivered(status)).toBe(false));
});

describe('outcomeOfFailure', () => {
  it('tries again after the backoff while the retry period lasts', () => {
    expect(outcomeOfFailure({ firstAttemptAt: t0 }, 3, at(10_000), policy(60_000, 5_000), 'HTTP 500')).toEqual({ status: 'pending', nextAttemptAt: at(15_000) });
  });

  it('counts the retry period from the first attempt (the failing one when it is the first)', () => {
    expect(outcomeOfFailure({ firstAttemptAt: null }, 1, at(0), policy(60_000, 5_000), 'HTTP 500')).toEqual({ status: 'pending', nextAttemptAt: at(5_000) });
  });

  it('gives up, with the reason, when the next attempt would fall after the retry period', () => {
    const outcome = outcomeOfFailure({ firstAttemptAt: t0 }, 9, at(58_000), policy(60_000, 5_000), 'response timeout after 400 ms');
    expect(outcome).toMatchObject({ status: 'failed' });
    expect(outcome.status === 'failed' && outcome.disableReason).toMatch(/9 attempts \(last: response timeout after 400 ms\)/);
  });

  it('never schedules an attempt past the retry period, and gives up only when the next would be', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000 }), fc.integer({ min: 0, max: 5_000_000 }), fc.integer({ min: 1, max: 10_000_000 }), (elapsed, delay, retryFor) => {
        const outcome = outcomeOfFailure({ firstAttemptAt: t0 }, 2, at(elapsed), policy(retryFor, delay), 'x');
        if (outcome.status === 'pending') return outcome.nextAttemptAt.getTime() - t0.getTime() <= retryFor;
        return outcome.status === 'failed' && elapsed + delay > retryFor;
      }),
    );
  });
});

describe('the lanes', () => {
  /**
   * The README's promise: k endpoints whose receivers hang (each attempt ends only at the
   * response timeout, and the delivery is taken again) hold at most
   * max(k, ⌊C/2⌋ + k − 1) of the C lanes, so with C ≥ 2 and k ≤ ⌈C/2⌉ at least one lane is never
   * theirs: an endpoint with nothing in flight finds it once the healthy sends in it end.
   */
  const hungBound = (lanes: number, hung: number) => Math.min(lanes, Math.max(hung, Math.floor(lanes / 2) + hung - 1));
  const HEALTHY = 3;

  /** Endpoints asking for lanes in any order, sends ending at any time (hung ones at their timeout): the lanes held at each step. */
  function simulate(lanes: number, hung: number, runs: ReadonlyArray<{ readonly who: number; readonly end: boolean; readonly times?: number }>) {
    const load = new Array<number>(hung + HEALTHY).fill(0);
    const held: Array<{ hungHeld: number; busy: number; refusedAnIdleEndpoint: boolean }> = [];
    // A run: one endpoint asking (or its sends ending) several times in a row, as when its deliveries fall due first.
    const steps = runs.flatMap((run) => Array.from({ length: run.times ?? 1 }, () => run));
    for (const { who, end } of steps) {
      const busy = load.reduce((sum, n) => sum + n, 0);
      const endpoint = who % load.length;
      let refusedAnIdleEndpoint = false;
      if (end) {
        // Its endpoint's attempt ends (a hung receiver's too, at the response timeout, and is taken
        // again later), or else the first in flight.
        const ending = load[endpoint]! > 0 ? endpoint : load.findIndex((n) => n > 0);
        if (ending >= 0) load[ending]! -= 1;
      } else if (mayTakeLane(lanes, busy, load[endpoint]!)) load[endpoint]! += 1;
      else refusedAnIdleEndpoint = load[endpoint] === 0 && busy < lanes;
      held.push({ hungHeld: load.slice(0, hung).reduce((sum, n) => sum + n, 0), busy: load.reduce((sum, n) => sum + n, 0), refusedAnIdleEndpoint });
    }
    return { held, load };
  }

  const scenario = fc
    .integer({ min: 1, max: 24 })
    .chain((lanes) => fc.tuple(fc.constant(lanes), fc.integer({ min: 1, max: lanes }), fc.array(fc.record({ who: fc.nat({ max: 30 }), end: fc.boolean(), times: fc.integer({ min: 1, max: 12 }) }), { maxLength: 60 })));

  it('k endpoints whose receivers hang hold at most max(k, ⌊C/2⌋ + k − 1) lanes, whatever the order they fall due in', () => {
    fc.assert(
      fc.property(scenario, ([lanes, hung, steps]) => {
        const { held, load } = simulate(lanes, hung, steps);
        expect(held.every((step) => step.hungHeld <= hungBound(lanes, hung))).toBe(true);
        expect(Math.max(...load)).toBeLessThanOrEqual(sendsPerEndpoint(lanes));
      }),
      { numRuns: 2_000 },
    );
  });

  it('leaves a lane no hung receiver holds while k ≤ ⌈C/2⌉ (C ≥ 2), and never refuses an endpoint with nothing in flight a free lane', () => {
    fc.assert(
      fc.property(scenario, ([lanes, hung, steps]) => {
        const { held } = simulate(lanes, hung, steps);
        if (lanes >= 2 && hung <= Math.ceil(lanes / 2)) expect(held.every((step) => step.hungHeld < lanes)).toBe(true);
        expect(held.some((step) => step.refusedAnIdleEndpoint)).toBe(false);
      }),
      { numRuns: 2_000 },
    );
  });

  it.each([
    [10, 3, 7],
    [3, 2, 2],
    [4, 2, 3],
  ])('reaches the bound: at concurrency %i, %i endpoints whose receivers hang, the first due alone, hold %i lanes', (lanes, hung, bound) => {
    expect(hungBound(lanes, hung)).toBe(bound);
    // The first hung receiver asks until refused, then each other one once.
    const steps = [...Array.from({ length: lanes }, () => ({ who: 0, end: false })), ...Array.from({ length: hung - 1 }, (_, index) => ({ who: index + 1, end: false }))];
    expect(simulate(lanes, hung, steps).held.at(-1)!.hungHeld).toBe(bound);
  });

  it("ends a hung receiver's attempt at the response timeout, and lets it take the lane again", () => {
    const steps = [
      { who: 0, end: false },
      { who: 0, end: false },
      { who: 0, end: true },
      { who: 0, end: false },
    ];
    expect(simulate(4, 1, steps).held.map((step) => step.hungHeld)).toEqual([1, 2, 1, 2]);
  });
});

describe('a round of sending', () => {
  /**
   * An attempt that ends while a read of the due deliveries is under way: the read answers as of
   * its start (PostgreSQL's snapshot), so it still lists that delivery as pending.
   */
  it('does not send again a delivery whose attempt ended while the next read ran', async () => {
    const deliveries = new Map(['d1', 'd2', 'd3'].map((id, index) => [id, { id, endpointId: `e${index + 1}`, status: 'pending' as string, attempts: 0 }]));
    const sent: string[] = [];
    let releaseFirst!: () => void;
    const firstAnswered = new Promise<void>((resolve) => (releaseFirst = resolve));
    let recordedFirst!: () => void;
    const firstRecorded = new Promise<void>((resolve) => (recordedFirst = resolve));
    let releaseSecond!: () => void;
    const secondAnswered = new Promise<void>((resolve) => (releaseSecond = resolve));
    let reads = 0;
    const pending = (): DueWebhookDelivery[] =>
      [...deliveries.values()]
        .filter((delivery) => delivery.status === 'pending')
        .map(({ id, endpointId, attempts }) => ({ id, endpointId, url: `http://127.0.0.1/${endpointId}`, secrets: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'], body: '{}', attempts, firstAttemptAt: null, attemptsThisPeriod: 0 }));
    const dispatch = createWebhookDispatcher({
      store: {
        async dueDeliveries() {
          reads += 1;
          const asOfStart = pending();
          if (reads === 2) {
            // d3 ended, d1 and d2 are in flight: d1's attempt ends and is recorded before this read answers.
            releaseFirst();
            await firstRecorded;
            await new Promise((resolve) => setImmediate(resolve));
            setImmediate(releaseSecond);
          }
          return asOfStart;
        },
        async recordAttempt(deliveryId, attempt, outcome) {
          const delivery = deliveries.get(deliveryId)!;
          if (attempt.attempt > delivery.attempts) Object.assign(delivery, { status: outcome.status, attempts: attempt.attempt });
          if (deliveryId === 'd1') recordedFirst();
        },
      },
      send: async (request) => {
        const id = [...deliveries.values()].find((delivery) => request.url.endsWith(delivery.endpointId))!.id;
        sent.push(id);
        if (id === 'd1') await firstAnswered;
        if (id === 'd2') await secondAnswered;
        return { statusCode: 204, error: null, body: null, durationMs: 1 };
      },
      retry: policy(60_000, 1_000),
      concurrency: 3,
      idleMs: 60_000,
      isLeading: () => true,
      clock: () => t0,
      logger: pino({ level: 'silent' }),
    });
    expect(await dispatch(new AbortController().signal)).toBe(3);
    expect(sent.sort()).toEqual(['d1', 'd2', 'd3']);
  });
});

describe('a round of sending, when an attempt cannot be recorded', () => {
  const due = (id: string, endpointId: string): DueWebhookDelivery => ({
    id,
    endpointId,
    url: `http://127.0.0.1/${endpointId}`,
    secrets: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'],
    body: '{}',
    attempts: 0,
    firstAttemptAt: null,
    attemptsThisPeriod: 0,
  });
  /** PostgreSQL refusing the text of one attempt: not transient, the same statement fails again. */
  const unstorable = Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: '22021' });

  function dispatcherOver(recordAttempt: (deliveryId: string, responseBody: string | null) => Promise<void>) {
    const pending = new Map([['d1', due('d1', 'e1')], ['d2', due('d2', 'e2')]]);
    const sent: string[] = [];
    const dispatch = createWebhookDispatcher({
      store: {
        dueDeliveries: async () => [...pending.values()],
        async recordAttempt(deliveryId, attempt) {
          await recordAttempt(deliveryId, attempt.responseBody);
          pending.delete(deliveryId);
        },
      },
      send: async (request) => {
        sent.push(request.url);
        return { statusCode: 200, error: null, body: 'from the receiver', durationMs: 1 };
      },
      retry: policy(60_000, 1_000),
      concurrency: 1,
      idleMs: 60_000,
      isLeading: () => true,
      clock: () => t0,
      logger: pino({ level: 'silent' }),
    });
    return { dispatch, sent, pending };
  }

  // What the receiver answered is made storable by the store (a NUL); a permanent failure left is
  // a bug or a schema this release does not know, which writing less would only hide.
  it('writes an attempt once when recording it fails for good, never again without what the receiver answered', async () => {
    const written: Array<[string, string | null]> = [];
    const { dispatch } = dispatcherOver(async (deliveryId, responseBody) => {
      written.push([deliveryId, responseBody]);
      if (deliveryId === 'd1') throw unstorable;
    });
    expect(await dispatch(new AbortController().signal)).toBe(1);
    expect(written).toEqual([
      ['d1', 'from the receiver'],
      ['d2', 'from the receiver'],
    ]);
  });

  it('goes on with the other deliveries when one cannot be recorded at all, and does not send that one again in the round', async () => {
    const { dispatch, sent, pending } = dispatcherOver(async (deliveryId) => {
      if (deliveryId === 'd1') throw unstorable;
    });
    expect(await dispatch(new AbortController().signal)).toBe(1);
    expect(sent).toEqual(['http://127.0.0.1/e1', 'http://127.0.0.1/e2']);
    expect([...pending.keys()]).toEqual(['d1']);
  });

  it('retries recording after a transient failure rather than sending again', async () => {
    let failures = 0;
    const { dispatch, sent, pending } = dispatcherOver(async (deliveryId) => {
      if (deliveryId === 'd1' && failures < 2) {
        failures += 1;
        throw Object.assign(new Error('Connection terminated unexpectedly'), {});
      }
    });
    expect(await dispatch(new AbortController().signal)).toBe(2);
    expect(sent).toEqual(['http://127.0.0.1/e1', 'http://127.0.0.1/e2']);
    expect(pending.size).toBe(0);
  });
});

describe('rounds of sending, when an attempt cannot be recorded', () => {
  const unstorable = Object.assign(new Error('a schema this release does not know'), { code: '42703' });
  const due = (id: string): DueWebhookDelivery => ({
    id,
    endpointId: `e-${id}`,
    url: `http://127.0.0.1/${id}`,
    secrets: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'],
    body: '{}',
    attempts: 0,
    firstAttemptAt: null,
    attemptsThisPeriod: 0,
  });

  it('holds that delivery back across rounds for a growing pause, while the others go on at once', async () => {
    const pending = new Map([['stuck', due('stuck')]]);
    let now = 0;
    let sent: string[] = [];
    const dispatch = createWebhookDispatcher({
      store: {
        dueDeliveries: async () => [...pending.values()],
        async recordAttempt(deliveryId) {
          if (deliveryId === 'stuck') throw unstorable;
          pending.delete(deliveryId);
        },
      },
      send: async (request) => {
        sent.push(request.url.slice('http://127.0.0.1/'.length));
        return { statusCode: 200, error: null, body: null, durationMs: 1 };
      },
      retry: { retryForMs: 60_000, delayAfter: (failures) => 1_000 * 2 ** (failures - 1) },
      concurrency: 2,
      idleMs: 60_000,
      isLeading: () => true,
      clock: () => at(now),
      logger: pino({ level: 'silent' }),
    });
    /** One round at `ms`, with one more delivery that records: the round made an attempt, so the worker starts the next at once. */
    const roundAt = async (ms: number, other: string) => {
      now = ms;
      pending.set(other, due(other));
      sent = [];
      expect(await dispatch(new AbortController().signal)).toBe(1);
      return sent.sort();
    };
    expect(await roundAt(0, 'a')).toEqual(['a', 'stuck']);
    expect(await roundAt(0, 'b')).toEqual(['b']);
    expect(await roundAt(999, 'c')).toEqual(['c']);
    expect(await roundAt(1_000, 'd')).toEqual(['d', 'stuck']);
    // The second failure to record pauses twice as long.
    expect(await roundAt(2_999, 'e')).toEqual(['e']);
    expect(await roundAt(3_000, 'f')).toEqual(['f', 'stuck']);
  });

  it('does not let deliveries held back fill the read of what is due, ahead of one that can go', async () => {
    const concurrency = 2;
    // More poisoned deliveries than one read takes (concurrency * 4), all due before the healthy one.
    const poisoned = Array.from({ length: concurrency * 4 + 1 }, (_, index) => `poisoned-${index}`);
    const pending = new Map([...poisoned, 'healthy'].map((id) => [id, due(id)]));
    let now = 0;
    let sent: string[] = [];
    const dispatch = createWebhookDispatcher({
      store: {
        // As the table: in due order, without the ids left out, `limit` at most.
        dueDeliveries: async (_now: Date, limit: number, excluding: readonly string[] = []) =>
          [...pending.values()].filter((delivery) => !excluding.includes(delivery.id)).slice(0, limit),
        async recordAttempt(deliveryId) {
          if (deliveryId.startsWith('poisoned-')) throw unstorable;
          pending.delete(deliveryId);
        },
      },
      send: async (request) => {
        sent.push(request.url.slice('http://127.0.0.1/'.length));
        return { statusCode: 200, error: null, body: null, durationMs: 1 };
      },
      retry: policy(60_000, 1_000),
      concurrency,
      idleMs: 60_000,
      isLeading: () => true,
      clock: () => at(now),
      logger: pino({ level: 'silent' }),
    });
    const roundAt = async (ms: number) => {
      now = ms;
      sent = [];
      const made = await dispatch(new AbortController().signal);
      return { made, sent: [...sent] };
    };
    const first = await roundAt(0);
    expect(first.sent).toContain('healthy');
    expect(first.made).toBe(1);
    // Each poisoned delivery went once, and waits its pause: none is sent again before it lapses.
    expect(first.sent.filter((id) => id.startsWith('poisoned-')).sort()).toEqual([...poisoned].sort());
    expect(await roundAt(999)).toEqual({ made: 0, sent: [] });
    expect((await roundAt(1_000)).sent.sort()).toEqual([...poisoned].sort());
  });
});

describe('the pause after a failed attempt', () => {
  it('counts the attempts of the retry period, not all of them: a manual retry waits the first pause, not the last', async () => {
    const asked: number[] = [];
    const recorded: unknown[] = [];
    const delivery: DueWebhookDelivery = {
      id: 'd1',
      endpointId: 'e1',
      url: 'http://127.0.0.1/e1',
      secrets: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'],
      body: '{}',
      attempts: 40,
      firstAttemptAt: null,
      attemptsThisPeriod: 0,
    };
    let read = false;
    const dispatch = createWebhookDispatcher({
      store: {
        dueDeliveries: async () => (read ? [] : ((read = true), [delivery])),
        recordAttempt: async (_id, attempt, outcome) => void recorded.push([attempt.attempt, outcome]),
      },
      send: async () => ({ statusCode: 503, error: null, body: null, durationMs: 1 }),
      retry: { retryForMs: 60_000, delayAfter: (attempt) => (asked.push(attempt), 1_000) },
      concurrency: 1,
      idleMs: 60_000,
      isLeading: () => true,
      clock: () => t0,
      logger: pino({ level: 'silent' }),
    });
    await dispatch(new AbortController().signal);
    expect(asked).toEqual([1]);
    // The attempt keeps its number in the history.
    expect(recorded).toEqual([[41, { status: 'pending', nextAttemptAt: at(1_000) }]]);
  });
});
