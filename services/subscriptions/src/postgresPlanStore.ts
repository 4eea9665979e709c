import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { isUniqueViolation } from '@tally/postgres';
import { guardedQuery } from './guardedQuery';
import { Plan, planFromDto, PlanItemDto, planToDto } from './plan';
import type { PlanStore } from './planStore';
import { PlanAlreadyExistsError } from './subscriptionErrors';

interface PlanRow {
  id: string;
  name: string;
  items: PlanItemDto[];
}

/** Rows were validated on the way in; parsing again turns them back into exact amounts. */
export function planFromRow(row: PlanRow): Plan {
  return planFromDto({ id: row.id, name: row.name, items: row.items });
}

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
        const { rows } = await pool.query<PlanRow>('SELECT id, name, items FROM plans WHERE id = $1', [planId]);
        return rows[0] === undefined ? undefined : planFromRow(rows[0]);
      }),

    listPlans: ({ after, limit }) =>
      guardedQuery(async () => {
        const { rows } = await pool.query<PlanRow>(
          'SELECT id, name, items FROM plans WHERE $1::text IS NULL OR id > $1 ORDER BY id LIMIT $2',
          [after, limit],
        );
        return rows.map(planFromRow);
      }),
  };
}
