import type { Plan } from './plan';

export interface PlanStore {
  /** Throws PlanAlreadyExistsError when the id is taken. */
  createPlan(plan: Plan): Promise<void>;
  getPlan(planId: string): Promise<Plan | undefined>;
  /** A page of plans by id, after the given id. */
  listPlans(page: { after: string | null; limit: number }): Promise<Plan[]>;
}
