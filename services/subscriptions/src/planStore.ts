import type { ActingKey } from '@tally/domain';
import type { Plan, StoredPlan } from './plan';

export interface PlanStore {
  /** Throws PlanAlreadyExistsError when the id is taken. `createdBy` is recorded with it. */
  createPlan(plan: Plan, createdBy?: ActingKey): Promise<StoredPlan>;
  getPlan(planId: string): Promise<StoredPlan | undefined>;
  /** A page of plans by id, after the given id; retired ones too. */
  listPlans(page: { after: string | null; limit: number }): Promise<StoredPlan[]>;
  /** Sets retiredAt and retiredBy unless set already (the first retirement stands); undefined when there is no such plan. */
  retirePlan(planId: string, at: Date, retiredBy?: ActingKey): Promise<StoredPlan | undefined>;
}
