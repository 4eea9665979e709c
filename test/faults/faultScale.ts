/**
 * How big each fault scenario is. `TALLY_FAULTS_SCALE=full` (the default, `npm run test:faults`)
 * is the run the issue asks for; `ci` keeps every kind of fault and every check but fewer events
 * and repetitions, so the suite fits beside the main test run in CI.
 */
export type FaultScaleName = 'full' | 'ci';

export interface FaultScale {
  readonly name: FaultScaleName;
  readonly consumerKills: { readonly events: number; readonly kills: number };
  readonly rebalance: { readonly events: number; readonly cycles: number };
  readonly outages: { readonly eventsPerTick: number; readonly postgresDownMs: number; readonly redisDownMs: number };
  readonly readSideKills: { readonly events: number; readonly projectorKills: number; readonly apiKills: number; readonly topUps: number };
  readonly hostile: { readonly hostileMessages: number; readonly validEvents: number };
  readonly apiFuzz: { readonly requests: number };
  readonly holds: { readonly rounds: number; readonly holdsPerRound: number; readonly apiKills: number; readonly schedulerKills: number };
}

const SCALES: Readonly<Record<FaultScaleName, FaultScale>> = {
  // About ten minutes on a shared 2-core machine, half of it the consumer kills: each one waits
  // out the dead member's 30 s session before the partitions move.
  full: {
    name: 'full',
    consumerKills: { events: 5000, kills: 10 },
    rebalance: { events: 5000, cycles: 2 },
    outages: { eventsPerTick: 40, postgresDownMs: 10_000, redisDownMs: 3000 },
    readSideKills: { events: 4000, projectorKills: 5, apiKills: 5, topUps: 200 },
    hostile: { hostileMessages: 1500, validEvents: 3000 },
    apiFuzz: { requests: 4000 },
    holds: { rounds: 40, holdsPerRound: 12, apiKills: 4, schedulerKills: 4 },
  },
  // About six minutes: every fault kind and every check, fewer repetitions.
  ci: {
    name: 'ci',
    consumerKills: { events: 2000, kills: 4 },
    rebalance: { events: 2500, cycles: 1 },
    outages: { eventsPerTick: 20, postgresDownMs: 10_000, redisDownMs: 2000 },
    readSideKills: { events: 1500, projectorKills: 3, apiKills: 3, topUps: 80 },
    hostile: { hostileMessages: 1000, validEvents: 1200 },
    apiFuzz: { requests: 1500 },
    holds: { rounds: 16, holdsPerRound: 10, apiKills: 2, schedulerKills: 2 },
  },
};

export function readFaultScale(env: NodeJS.ProcessEnv = process.env): FaultScale {
  const name = env.TALLY_FAULTS_SCALE ?? 'full';
  if (name !== 'full' && name !== 'ci') throw new Error(`TALLY_FAULTS_SCALE must be full or ci, got ${JSON.stringify(name)}`);
  return SCALES[name];
}

export const faultScale: FaultScale = readFaultScale();
