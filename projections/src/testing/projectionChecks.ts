import type { EventStore } from '@tally/event-store';
import { waitFor } from '@tally/test-support';
import type { BalanceReadModel } from '../balanceReadModel';
import { expectedSnapshots } from './ledgerWriter';

/** Test-only: waits until the served projection reflects the store's head as it is now. */
export async function caughtUp(readModel: BalanceReadModel, eventStore: EventStore): Promise<void> {
  const head = await eventStore.headPosition();
  await waitFor(async () => ((await readModel.servedCheckpoint()) ?? -1n) >= head, { description: `the read model to reach position ${head}` });
}

/** Test-only: every balance in the store is served exactly as the domain folds it, by id and by customer. */
export async function expectServedExactly(readModel: BalanceReadModel, eventStore: EventStore): Promise<void> {
  await caughtUp(readModel, eventStore);
  const expected = await expectedSnapshots(eventStore);
  const byCustomer = new Map<string, string[]>();
  for (const [balanceId, snapshot] of expected) {
    expect(await readModel.getBalance(balanceId)).toEqual(snapshot);
    byCustomer.set(snapshot.customerId, [...(byCustomer.get(snapshot.customerId) ?? []), balanceId]);
  }
  for (const [customerId, balanceIds] of byCustomer) {
    const served = await readModel.getCustomerBalances(customerId);
    expect(served.map((snapshot) => snapshot.balanceId)).toEqual(balanceIds.sort());
  }
}
