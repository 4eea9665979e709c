import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { isUniqueViolation } from '@tally/postgres';
import { guardedQuery } from './guardedQuery';
import { planFromDto, type PlanDto, planToDto } from './plan';
import type { PlanStore } from './planStore';
import { PlanAlreadyExistsError } from './subscriptionErrors';

/** A row is a plan's DTO. Rows were validated on the way in; planFromDto turns them back into exact amounts. */
export function createPostgresPlanStore(options: { pool: Pool; logger: Logger }): PlanStore {
  const { pool } = options;
  const logger = options.logger.child({ module: 'plan-store' });

  return {
    createPlan: (plan) =>
      guardedQuery(async () => {
        const dto = planToDto(plan);
        try {
          await pool.query('INSERT INTO plans (id, name, items) VALUES ($1, $2, $3)', [dto.id, dto.name, JSON.stringify(dto.items)]);
        } catch (error) {
          if (isUniqueViolation(error)) throw new PlanAlreadyExistsError(`a plan with id "${plan.id}" already exists`);
          throw error;
        }
        logger.info({ planId: plan.id, items: plan.items.length }, 'plan created');
      }),

    getPlan: (planId) =>
      guardedQuery(async () => {
        const { rows } = await pool.query<PlanDto>('SELECT id, name, items FROM plans WHERE id = $1', [planId]);
        return rows[0] === undefined ? undefined : planFromDto(rows[0]);
      }),

    listPlans: ({ after, limit }) =>
      guardedQuery(async () => {
        const { rows } = await pool.query<PlanDto>(
          'SELECT id, name, items FROM plans WHERE $1::text IS NULL OR id > $1 ORDER BY id LIMIT $2',
          [after, limit],
        );
        return rows.map(planFromDto);
      }),
  };
}
