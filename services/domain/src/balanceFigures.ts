import type { Micros } from './credits';
import type { OpenBalance } from './balance';

/** The three figures of a balance that every reader of one reports. */
export interface BalanceFigures {
  readonly balance: Micros;
  /** Credits reserved by open holds. */
  readonly held: Micros;
  /** balance − held. */
  readonly available: Micros;
}

/**
 * The figures of a folded balance, derived here once so that webhooks, the API and whatever
 * else shows them agree. Until holds exist nothing is held: held is 0 and available is the
 * balance; once the fold keeps what open holds reserve, this is the one place that reads it.
 */
export function balanceFigures(state: OpenBalance): BalanceFigures {
  const held = 0n;
  return { balance: state.balance, held, available: state.balance - held };
}
