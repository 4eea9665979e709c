/**
 * `node services/postgres/dist/migrateCli.js`: brings the database in TALLY_DATABASE_URL up to
 * date (schema TALLY_DATABASE_SCHEMA) and exits; non-zero on failure so a start script stops.
 */
import pino from 'pino';
import { createPool } from './createPool';
import { migrate } from './migrate';

/** A variable set to nothing or spaces counts as unset, as in the main job's configuration (README). */
const setting = (name: string, fallback: string): string => process.env[name]?.trim() || fallback;

async function main(): Promise<void> {
  const logger = pino({ name: 'tally-migrate', level: setting('TALLY_LOG_LEVEL', 'info') });
  const connectionString = setting('TALLY_DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/tally');
  const schema = setting('TALLY_DATABASE_SCHEMA', 'public');
  const pool = createPool({ connectionString, max: 1, applicationName: 'tally-migrate', logger });
  try {
    const { applied } = await migrate({ pool, schema, logger });
    logger.info({ schema, applied }, applied.length > 0 ? 'database migrated' : 'database already up to date');
  } catch (error) {
    logger.error({ err: error, schema }, 'migration failed');
    process.exitCode = 1;
  } finally {
    await pool.end();
  }
}

void main();
