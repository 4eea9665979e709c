import type { ActingKey } from '@tally/domain';
import type { Plan } from './plan';
import type { CreditOverride, OverrideVersion, Subscription } from './subscription';

export interface NewSubscription {
  readonly id: string;
  readonly customerId: string;
  readonly planId: string;
  readonly startsAt: Date;
  /** In force from period 0. */
  readonly overrides: readonly CreditOverride[];
  /** Recorded as the subscription's creator and as the key of its initial overrides. */
  readonly createdBy?: ActingKey;
}

/** A subscription that may still grant, with its plan: all the scheduler needs for it. */
export interface SchedulableSubscription {
  readonly subscription: Subscription;
  readonly plan: Plan;
}

/** What a grant decided under the subscription's lock (see SubscriptionStore.reserveGrant). */
export interface GrantReservation<T> {
  /** The period to grant: the product's reservation is raised to it. Absent: none. */
  readonly reserve?: number;
  readonly outcome: T;
}

export interface SubscriptionStore {
  /** Stores the subscription and its initial overrides together. Throws SubscriptionAlreadyExistsError when the id is taken. */
  createSubscription(subscription: NewSubscription): Promise<Subscription>;
  getSubscription(subscriptionId: string): Promise<Subscription | undefined>;
  /**
   * Changes a subscription's overrides under its row lock, in one transaction: `decide` gets it as
   * it stands (no other change can come between) and answers the versions to add, each recording
   * `changedBy` (one for a product and period that exists replaces it), or throws to change
   * nothing. The version goes up by one. Answers the subscription as this change left it (another
   * change waits for the lock until then); undefined when there is no such subscription.
   */
  changeOverrides(
    subscriptionId: string,
    decide: (current: Subscription) => readonly OverrideVersion[],
    changedBy?: ActingKey,
  ): Promise<Subscription | undefined>;
  /**
   * Cancels the subscription under its row lock unless it is canceled already (the first
   * cancellation stands, with its key, and only it raises the version); undefined when there is no
   * such subscription. `decide` gets it as it stands under the lock and answers the instant the
   * cancellation stands at (canceledAt), or throws to change nothing; it is asked of a canceled
   * one too, so a check it makes holds either way, and its instant is then not used.
   */
  cancelSubscription(subscriptionId: string, decide: (current: Subscription) => Date, canceledBy?: ActingKey): Promise<Subscription | undefined>;
  /** A page of a customer's subscriptions (canceled ones too) with their plans, by id, after the given id. */
  listCustomerSubscriptions(customerId: string, page: { after: string | null; limit: number }): Promise<SchedulableSubscription[]>;
  /** A page of the subscriptions that may still grant, ordered by id, after the given id. */
  listSchedulable(page: { after: string | null; limit: number }): Promise<SchedulableSubscription[]>;
  /**
   * Decides a grant under the subscription's row lock, the one a cancellation and a change of
   * terms take, in one short transaction: `decide` gets the subscription as it stands under the
   * lock and, calling nothing, answers whether the period is still due; when it answers one to
   * `reserve`, the product's reservation (reservedThrough) is raised to it (never lowered) before
   * the lock is let go. A cancellation or change of terms made after counts the period as granted
   * (cancellationInstant, nextOverrideVersions), so it may be granted, and granted again after a
   * failure, on the terms `decide` saw. The grant itself is made after, without the lock, and
   * recorded with recordGranted. Answers `decide`'s outcome; undefined when there is no such
   * subscription.
   */
  reserveGrant<T>(subscriptionId: string, productId: string, decide: (current: Subscription) => GrantReservation<T>): Promise<T | undefined>;
  /** Raises the watermark (never lowers it: two grants may report out of order). */
  recordGranted(subscriptionId: string, productId: string, period: number): Promise<void>;
  /** A canceled subscription has granted its last period: the scheduler can skip it from now on. */
  markGrantsCompleted(subscriptionId: string): Promise<void>;
}
