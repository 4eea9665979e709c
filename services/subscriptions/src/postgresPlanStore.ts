import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { actingKeyParams, isUniqueViolation } from '@tally/postgres';
import { guardedQuery } from './guardedQuery';
import { planFromDto, type PlanDto, planToDto, type StoredPlan } from './plan';
import type { PlanStore } from './planStore';
import { PlanAlreadyExistsError } from './subscriptionErrors';

type PlanRow = PlanDto & Pick<StoredPlan, 'createdAt' | 'createdBy' | 'retiredAt' | 'retiredBy'>;

const PLAN_COLUMNS = `id, name, items, created_at AS "createdAt", acting_key(created_by_key_id, created_by_key_name) AS "createdBy",
  retired_at AS "retiredAt", acting_key(retired_by_key_id, retired_by_key_name) AS "retiredBy"`;

/** Rows were validated on the way in; planFromDto turns their items back into exact amounts. */
const storedPlan = ({ createdAt, createdBy, retiredAt, retiredBy, ...dto }: PlanRow): StoredPlan => ({
  ...planFromDto(dto),
  createdAt,
  createdBy,
  retiredAt,
  retiredBy,
});

export function createPostgresPlanStore(options: { pool: Pool; logger: Logger }): PlanStore {
  const { pool } = options;
  const logger = options.logger.child({ module: 'plan-store' });

  return {
    createPlan: (plan, createdBy) =>
      guardedQuery(async () => {
        const dto = planToDto(plan);
        let rows: PlanRow[];
        try {
          ({ rows } = await pool.query<PlanRow>(
            `INSERT INTO plans (id, name, items, created_by_key_id, created_by_key_name) VALUES ($1, $2, $3, $4, $5) RETURNING ${PLAN_COLUMNS}`,
            [dto.id, dto.name, JSON.stringify(dto.items), ...actingKeyParams(createdBy)],
          ));
        } catch (error) {
          if (isUniqueViolation(error)) throw new PlanAlreadyExistsError(`a plan with id "${plan.id}" already exists`);
          throw error;
        }
        logger.info({ planId: plan.id, items: plan.items.length, createdBy }, 'plan created');
        return storedPlan(rows[0]!);
      }),

    getPlan: (planId) =>
      guardedQuery(async () => {
        const { rows } = await pool.query<PlanRow>(`SELECT ${PLAN_COLUMNS} FROM plans WHERE id = $1`, [planId]);
        return rows[0] === undefined ? undefined : storedPlan(rows[0]);
      }),

    listPlans: ({ after, limit }) =>
      guardedQuery(async () => {
        const { rows } = await pool.query<PlanRow>(
          `SELECT ${PLAN_COLUMNS} FROM plans WHERE $1::text IS NULL OR id > $1 ORDER BY id LIMIT $2`,
          [after, limit],
        );
        return rows.map(storedPlan);
      }),

    retirePlan: (planId, at, retiredBy) =>
      guardedQuery(async () => {
        // The key is written with the time, and only by the retirement that sets it.
        const { rows } = await pool.query<PlanRow>(
          `UPDATE plans SET retired_at = COALESCE(retired_at, $2),
                  retired_by_key_id = CASE WHEN retired_at IS NULL THEN $3 ELSE retired_by_key_id END,
                  retired_by_key_name = CASE WHEN retired_at IS NULL THEN $4 ELSE retired_by_key_name END
            WHERE id = $1 RETURNING ${PLAN_COLUMNS}`,
          [planId, at, ...actingKeyParams(retiredBy)],
        );
        if (rows[0] === undefined) return undefined;
        logger.info({ planId, retiredBy }, 'plan retired');
        return storedPlan(rows[0]);
      }),
  };
}
