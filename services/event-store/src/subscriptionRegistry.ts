import type { Subscription } from './eventStore';

/** The subscriptions a store started and that are still running, so that its close() stops them all. */
export function createSubscriptionRegistry(): { track(subscription: Subscription): Subscription; stopAll(): Promise<void> } {
  const running = new Set<Subscription>();
  return {
    track(subscription) {
      const tracked: Subscription = {
        async stop() {
          running.delete(tracked);
          await subscription.stop();
        },
      };
      running.add(tracked);
      return tracked;
    },
    async stopAll() {
      await Promise.all([...running].map((subscription) => subscription.stop()));
    },
  };
}
