import { TallyError } from '@tally/domain';

export class PlanNotFoundError extends TallyError {
  readonly code = 'plan_not_found';
  readonly retriable = false;
}

export class PlanAlreadyExistsError extends TallyError {
  readonly code = 'plan_already_exists';
  readonly retriable = false;
}

/** A new subscription to a plan whose offer has ended; its existing subscriptions go on. */
export class PlanRetiredError extends TallyError {
  readonly code = 'plan_retired';
  readonly retriable = false;
}

export class SubscriptionNotFoundError extends TallyError {
  readonly code = 'subscription_not_found';
  readonly retriable = false;
}

export class SubscriptionAlreadyExistsError extends TallyError {
  readonly code = 'subscription_already_exists';
  readonly retriable = false;
}

/** A change to a canceled subscription: it grants nothing after its current period, so there is nothing to change. */
export class SubscriptionCanceledError extends TallyError {
  readonly code = 'subscription_canceled';
  readonly retriable = false;
}

/** PostgreSQL unreachable or restarting: the same call can succeed later. */
export class SubscriptionsUnavailableError extends TallyError {
  readonly code = 'subscriptions_unavailable';
  readonly retriable = true;
}

/**
 * A change made against a version of the subscription (HTTP `If-Match`) that is no longer its
 * newest: another change came first. Not retriable as it is: read it again and apply the change to that.
 */
export class SubscriptionChangedError extends TallyError {
  readonly code = 'subscription_changed';
  readonly retriable = false;
}
