import { randomUUID } from 'node:crypto';
import { type ActingKey, textLength, ValidationError } from '@tally/domain';
import { CatalogStore, ProductNotFoundError } from '@tally/catalog';
import type { BalanceRegistry, LedgerService } from '@tally/ledger';
import type { Logger } from 'pino';
import { Plan, planFromDto, PlanItemDto, type StoredPlan } from './plan';
import type { PlanStore } from './planStore';
import { assertStartWithinBounds, assertSubscriptionId, cancellationInstant, CreditOverrideDto, nextOverrideVersions, overridesFromDto, Subscription } from './subscription';
import { PlanNotFoundError, PlanRetiredError, SubscriptionCanceledError, SubscriptionChangedError, SubscriptionNotFoundError } from './subscriptionErrors';
import { createSubscriptionGranter, grantFailureFields } from './subscriptionGranter';
import type { SubscriptionStore } from './subscriptionStore';

export interface PlanInput {
  readonly id?: string;
  readonly name: string;
  readonly items: readonly PlanItemDto[];
}

export interface SubscriptionInput {
  readonly id?: string;
  readonly customerId: string;
  readonly planId: string;
  /**
   * Defaults to now. A past start makes every period since then due: the request grants the
   * first `inlineGrantPeriods` of them, the scheduler the rest, in bounded runs. A start more than
   * MAX_BACKDATE_YEARS back or MAX_START_AHEAD_YEARS ahead is refused (ValidationError).
   */
  readonly startsAt?: Date;
  readonly overrides?: readonly CreditOverrideDto[];
}

/** A subscription with its plan, as of a moment: what the API renders. */
export interface SubscriptionDetails {
  readonly subscription: Subscription;
  readonly plan: Plan;
  readonly asOf: Date;
}

/**
 * Each change takes the API key that asked for it (ActingKey), recorded with what it changed;
 * none for a change made without a key, which records null.
 */
export interface SubscriptionService {
  /** Throws ProductNotFoundError for an item whose product is not in the catalog. */
  createPlan(input: PlanInput, createdBy?: ActingKey): Promise<StoredPlan>;
  getPlan(planId: string): Promise<StoredPlan>;
  /** A page of plans by id, after the given id; retired ones too. */
  listPlans(page: { after: string | null; limit: number }): Promise<StoredPlan[]>;
  /**
   * Ends the plan's offer: new subscriptions to it are refused (PlanRetiredError), its existing
   * ones keep granting. Retiring again changes nothing, not even who retired it.
   */
  retirePlan(planId: string, retiredBy?: ActingKey): Promise<StoredPlan>;
  /**
   * Stores the subscription, then grants what is due (period 0 when it starts now). The balances
   * it opens name `createdBy` as their opening's actor, whoever opens them (this request or the
   * scheduler): it is read from the stored subscription.
   */
  createSubscription(input: SubscriptionInput, createdBy?: ActingKey): Promise<SubscriptionDetails>;
  getSubscription(subscriptionId: string): Promise<SubscriptionDetails>;
  /** A page of a customer's subscriptions by id, after the given id; canceled ones too. */
  listCustomerSubscriptions(customerId: string, page: { after: string | null; limit: number }): Promise<SubscriptionDetails[]>;
  /**
   * Replaces the overrides from each item's next period on; the current period keeps its terms.
   * Current as of when the change holds the subscription's lock, after any wait for it.
   * Concurrent changes are made one after the other, each answering the subscription as it left
   * it. With `ifVersion`, only a subscription still at that version is changed, else
   * SubscriptionChangedError.
   */
  changeOverrides(subscriptionId: string, overrides: readonly CreditOverrideDto[], changedBy?: ActingKey, options?: ChangeOptions): Promise<SubscriptionDetails>;
  /**
   * No grants after the current period: the one in progress when the cancel holds the
   * subscription's lock (after any wait for it), or a later one if a grant has reserved it (see
   * cancellationInstant). Canceling again changes nothing, not even who canceled.
   * With `ifVersion`, only a subscription still at that version is canceled, else SubscriptionChangedError.
   */
  cancelSubscription(subscriptionId: string, canceledBy?: ActingKey, options?: ChangeOptions): Promise<SubscriptionDetails>;
}

/** A change made against the version of the subscription read (HTTP If-Match). */
export interface ChangeOptions {
  readonly ifVersion?: number;
}

function assertVersion(subscription: Subscription, ifVersion: number | undefined): void {
  if (ifVersion !== undefined && subscription.version !== ifVersion) {
    throw new SubscriptionChangedError(
      `subscription "${subscription.id}" is at version ${subscription.version}, not ${ifVersion}: another change came first; read it again and apply the change to that`,
    );
  }
}

interface SubscriptionServiceOptions {
  readonly plans: PlanStore;
  readonly subscriptions: SubscriptionStore;
  readonly ledger: LedgerService;
  readonly catalog: Pick<CatalogStore, 'getProduct'>;
  readonly balanceRegistry: Pick<BalanceRegistry, 'findBalance'>;
  readonly clock: () => Date;
  readonly logger: Logger;
  /**
   * Periods of backlog (before each item's current one) a create or cancel request grants before
   * it answers (default 12: a year of monthly periods); anything further behind is the
   * scheduler's, so a backdated subscription never makes a request run long. Each item's current
   * period comes with its backlog, outside the bound. 0 leaves every grant to the scheduler.
   */
  readonly inlineGrantPeriods?: number;
}

const MAX_CUSTOMER_ID_LENGTH = 256;
const DEFAULT_INLINE_GRANT_PERIODS = 12;

export function createSubscriptionService(options: SubscriptionServiceOptions): SubscriptionService {
  const { plans, subscriptions, catalog, clock } = options;
  const logger = options.logger.child({ module: 'subscription-service' });
  const granter = createSubscriptionGranter(options);
  const inlineGrantPeriods = options.inlineGrantPeriods ?? DEFAULT_INLINE_GRANT_PERIODS;
  if (!Number.isInteger(inlineGrantPeriods) || inlineGrantPeriods < 0) throw new Error('inlineGrantPeriods must be a non-negative integer');

  async function planOf(planId: string): Promise<StoredPlan> {
    const plan = await plans.getPlan(planId);
    if (plan === undefined) throw new PlanNotFoundError(`no plan with id "${planId}"`);
    return plan;
  }

  async function subscriptionOf(subscriptionId: string): Promise<Subscription> {
    const subscription = await subscriptions.getSubscription(subscriptionId);
    if (subscription === undefined) throw new SubscriptionNotFoundError(`no subscription with id "${subscriptionId}"`);
    return subscription;
  }

  /**
   * Grants what is due right away, up to inlineGrantPeriods of backlog, so a new subscription's
   * credits are there when the request returns. The subscription is already stored: if the ledger
   * fails now, or more periods are due than a request grants, the scheduler grants the rest on its
   * next ticks, and the response shows what was granted (grantedThrough).
   */
  async function grantNow(subscription: Subscription, plan: Plan, now: Date): Promise<Subscription> {
    if (inlineGrantPeriods === 0) return subscription;
    try {
      const outcome = await granter.grantDue(subscription, plan, now, { maxPeriods: inlineGrantPeriods });
      if (!outcome.caughtUp) {
        logger.info({ subscriptionId: subscription.id, granted: outcome.granted }, 'more periods due than a request grants; the scheduler grants the rest');
      }
      for (const failure of outcome.failures) {
        logger.warn(grantFailureFields(subscription.id, failure), 'immediate grant failed; the scheduler will grant');
      }
      if (outcome.complete) await subscriptions.markGrantsCompleted(subscription.id);
    } catch (error) {
      logger.warn({ err: error, subscriptionId: subscription.id }, 'immediate grant failed; the scheduler will grant');
    }
    return subscriptionOf(subscription.id);
  }

  return {
    async createPlan(input, createdBy) {
      const plan = planFromDto({ id: input.id ?? randomUUID(), name: input.name, items: input.items });
      for (const item of plan.items) {
        if ((await catalog.getProduct(item.productId)) === undefined) {
          throw new ProductNotFoundError(`no credit product with id "${item.productId}"`);
        }
      }
      return plans.createPlan(plan, createdBy);
    },

    getPlan: planOf,

    listPlans: (page) => plans.listPlans(page),

    async retirePlan(planId, retiredBy) {
      const retired = await plans.retirePlan(planId, clock(), retiredBy);
      if (retired === undefined) throw new PlanNotFoundError(`no plan with id "${planId}"`);
      return retired;
    },

    async createSubscription(input, createdBy) {
      const id = assertSubscriptionId(input.id ?? randomUUID());
      if (typeof input.customerId !== 'string' || input.customerId.length === 0 || textLength(input.customerId) > MAX_CUSTOMER_ID_LENGTH) {
        throw new ValidationError(`customerId must be 1-${MAX_CUSTOMER_ID_LENGTH} characters`);
      }
      const now = clock();
      const startsAt = input.startsAt ?? now;
      if (Number.isNaN(startsAt.getTime())) throw new ValidationError('startsAt must be a valid date-time');
      const plan = await planOf(input.planId);
      // Refused here with the plan at hand; the store refuses it again atomically with the insert.
      if (plan.retiredAt !== null) throw new PlanRetiredError(`plan "${plan.id}" is retired: it takes no new subscriptions`);
      assertStartWithinBounds(startsAt, now);
      const overrides = overridesFromDto(input.overrides ?? [], plan);
      const created = await subscriptions.createSubscription({
        id,
        customerId: input.customerId,
        planId: plan.id,
        startsAt,
        overrides,
        ...(createdBy !== undefined ? { createdBy } : {}),
      });
      return { subscription: await grantNow(created, plan, now), plan, asOf: now };
    },

    async getSubscription(subscriptionId) {
      const subscription = await subscriptionOf(subscriptionId);
      return { subscription, plan: await planOf(subscription.planId), asOf: clock() };
    },

    async listCustomerSubscriptions(customerId, page) {
      const asOf = clock();
      return (await subscriptions.listCustomerSubscriptions(customerId, page)).map(({ subscription, plan }) => ({ subscription, plan, asOf }));
    },

    async changeOverrides(subscriptionId, overrideDtos, changedBy, options = {}) {
      const plan = await planOf((await subscriptionOf(subscriptionId)).planId);
      const overrides = overridesFromDto(overrideDtos, plan);
      // Decided on the subscription as it stands under its lock, and at the time it was taken: a
      // change made meanwhile is seen, and a period that began while this one waited keeps its terms.
      const decided: { at?: Date } = {};
      const changed = await subscriptions.changeOverrides(
        subscriptionId,
        (current) => {
          assertVersion(current, options.ifVersion);
          if (current.canceledAt !== null) {
            throw new SubscriptionCanceledError(`subscription "${subscriptionId}" is canceled; it grants nothing after its current period`);
          }
          decided.at = clock();
          return nextOverrideVersions(current, plan, overrides, decided.at);
        },
        changedBy,
      );
      if (changed === undefined) throw new SubscriptionNotFoundError(`no subscription with id "${subscriptionId}"`);
      return { subscription: changed, plan, asOf: decided.at ?? clock() };
    },

    async cancelSubscription(subscriptionId, canceledBy, options = {}) {
      const plan = await planOf((await subscriptionOf(subscriptionId)).planId);
      // The time is read under the lock: a period that began while this cancel waited for it (and
      // that a grant holding the lock meanwhile may have reserved) is the final one, as is a later
      // one a grant has reserved (cancellationInstant).
      const decided: { at?: Date } = {};
      const canceled = await subscriptions.cancelSubscription(
        subscriptionId,
        (current) => {
          assertVersion(current, options.ifVersion);
          decided.at = clock();
          return cancellationInstant(current, plan, decided.at);
        },
        canceledBy,
      );
      if (canceled === undefined) throw new SubscriptionNotFoundError(`no subscription with id "${subscriptionId}"`);
      const now = decided.at ?? clock();
      // The current period is still granted: if no tick has granted it yet, this does.
      return { subscription: await grantNow(canceled, plan, now), plan, asOf: now };
    },
  };
}
