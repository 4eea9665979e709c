import type { FuzzCase } from './apiFuzzCases';
import { sendRaw, type RawResponse } from './rawHttp';

export interface FuzzOutcome {
  readonly results: ReadonlyArray<{ readonly fuzz: FuzzCase; readonly response: RawResponse }>;
  /** How many answers of each status ("reset" or "timeout" for none). */
  readonly statuses: Readonly<Record<string, number>>;
  readonly kinds: Readonly<Record<string, number>>;
  readonly durationMs: number;
}

/** Sends every case from `concurrency` clients at once and tallies the answers. */
export async function runFuzzCases(port: number, cases: readonly FuzzCase[], concurrency: number): Promise<FuzzOutcome> {
  const startedAt = Date.now();
  const results: Array<{ fuzz: FuzzCase; response: RawResponse }> = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < cases.length) {
        const fuzz = cases[next]!;
        next += 1;
        results.push({ fuzz, response: await sendRaw(port, fuzz.request) });
      }
    }),
  );
  const statuses: Record<string, number> = {};
  const kinds: Record<string, number> = {};
  for (const { fuzz, response } of results) {
    const status = String(response.status ?? response.error ?? 'none');
    statuses[status] = (statuses[status] ?? 0) + 1;
    kinds[fuzz.kind] = (kinds[fuzz.kind] ?? 0) + 1;
  }
  return { results, statuses, kinds, durationMs: Date.now() - startedAt };
}
