import type { Micros } from '@tally/domain';
import { parseHoldId, type AmountRequestHash, type HoldCommandResult, type LedgerService, type PlaceHoldRequest, type RequestOptions } from '@tally/ledger';
import type { BalanceService } from '../balances/balanceService';
import { holdViewOf, type HoldView } from './holdView';

interface HoldServiceDeps {
  readonly ledger: Pick<LedgerService, 'placeHold' | 'captureHold' | 'releaseHold'>;
  /** Holds are writes to their balance: queued behind its other writes, answered with the balance after. */
  readonly balances: Pick<BalanceService, 'run'>;
}

export interface HoldAnswer {
  readonly hold: HoldView;
  /** The command was found already done (same key, or the hold's one capture or release): this is what it answered. */
  readonly replayed: boolean;
}

export interface HoldService {
  place(balanceId: string, request: PlaceHoldRequest, options: RequestOptions & { idempotencyKey: string }): Promise<HoldAnswer>;
  capture(holdId: string, input: { credits?: Micros; reason: string | null }, options: Pick<RequestOptions, 'actor'> & { readonly requestHash?: AmountRequestHash }): Promise<HoldAnswer>;
  release(holdId: string, input: { reason: string | null }, options: Pick<RequestOptions, 'requestHash' | 'actor'>): Promise<HoldAnswer>;
}

/** Holds over the ledger: every command runs in its balance's write queue and answers the hold and the three figures after it. */
export function createHoldService({ ledger, balances }: HoldServiceDeps): HoldService {
  async function answer(balanceId: string, command: () => Promise<HoldCommandResult>): Promise<HoldAnswer> {
    const { result, balance } = await balances.run(balanceId, command);
    return { hold: holdViewOf(result.holdId, result.events, balance), replayed: result.replayed };
  }

  /** A hold id names its balance; an id that names none is the ledger's to refuse (hold_not_found), queued on its own. */
  const queueOf = (holdId: string) => parseHoldId(holdId)?.balanceId ?? holdId;

  return {
    place: (balanceId, request, options) => answer(balanceId, () => ledger.placeHold(balanceId, request, options)),
    capture: (holdId, input, options) => answer(queueOf(holdId), () => ledger.captureHold(holdId, input, options)),
    release: (holdId, input, options) => answer(queueOf(holdId), () => ledger.releaseHold(holdId, input, options)),
  };
}
