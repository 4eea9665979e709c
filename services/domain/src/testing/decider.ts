import { expect } from '@jest/globals';
import { BalanceCommand, BalanceEvent, BalanceState, decide, evolve, foldBalance } from '../balance';

/**
 * Given/when/then for the balance decider: `given(history).when(command).then(events)`.
 * The history is folded with `evolve`, the command decided on the resulting state, and the
 * decided events are also folded onto that state, so every expectation doubles as a check
 * that `evolve` accepts what `decide` emits. Test-only: nothing in `index.ts` exports it.
 */
export interface DeciderExpectation {
  /** Asserts the exact events (deep equality) and returns the state they lead to. */
  then(expected: readonly BalanceEvent[]): BalanceState;
  /** Asserts that deciding throws an instance of `errorClass`. */
  thenThrows(errorClass: abstract new (...args: never[]) => Error): void;
}

export function given(history: readonly BalanceEvent[]): { when(command: BalanceCommand): DeciderExpectation } {
  const state = foldBalance(history);
  return {
    when(command) {
      return {
        then(expected) {
          const events = decide(command, state);
          expect(events).toEqual(expected);
          return events.reduce(evolve, state);
        },
        thenThrows(errorClass) {
          expect(() => decide(command, state)).toThrow(errorClass);
        },
      };
    },
  };
}
