/**
 * The deliverer's timings in tests: delays of tens of milliseconds instead of seconds to hours,
 * so retries, a receiver's timeouts and a takeover all happen within a test's few seconds.
 */
export const TEST_DELIVERER_TIMINGS = {
  retry: { initialDelayMs: 50, maxDelayMs: 400, retryForMs: 10 * 60_000 },
  send: { connectTimeoutMs: 1_000, responseTimeoutMs: 400 },
  pollMs: 50,
  batchSize: 20,
  lease: { standbyPollMs: 200, heartbeatMs: 200, timeoutMs: 1_000 },
} as const;
