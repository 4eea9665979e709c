import type { CreditBalance } from './apiTypes';
import { age, formatCredits, formatTime } from './format';

/**
 * A balance's figure: the amount, its warning limit, a visible (and announced) below-limit
 * state, and how fresh it is: when it last changed and when this page last read it.
 */
export function BalanceFigure({ balance, readAt, now }: { balance: CreditBalance; readAt: number; now: number }) {
  return (
    <div class={`balance-figure${balance.belowThreshold ? ' below' : ''}`}>
      <p class="amount">
        <span class="label">Current balance</span>
        <strong data-testid="balance-amount">{formatCredits(balance.balance)}</strong> credits
      </p>
      <p>
        <span class="label">Warning limit</span> {balance.lowBalanceThreshold === null ? 'none' : formatCredits(balance.lowBalanceThreshold)}
      </p>
      {balance.belowThreshold && (
        <p class="badge warning" role="status">
          Below warning limit
        </p>
      )}
      <p class="freshness">
        Changed {formatTime(balance.updatedAt)}; read {age(new Date(readAt).toISOString(), now)}
      </p>
    </div>
  );
}
