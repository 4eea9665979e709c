import { createTestSchema, type TestSchema } from '@tally/test-support';
import { openStatementWindow } from './pgStatements';

// Against the machine's PostgreSQL as it is: a server that loads pg_stat_statements must have a
// window count what ran in it; one that does not (this machine's, unless an engineer loaded it
// for a measurement) must give no window and leave nothing behind outside the run's schema.
describe('openStatementWindow', () => {
  let scratch: TestSchema;

  beforeEach(async () => {
    scratch = await createTestSchema({ prefix: 'bench_pg_statements' });
  });

  afterEach(async () => {
    await scratch.drop();
  });

  it('counts the statements run inside the window, or gives none when the server cannot count them', async () => {
    const { rows } = await scratch.pool.query<{ loaded: boolean }>(
      "SELECT 'pg_stat_statements' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')) AS loaded",
    );
    const { rows: before } = await scratch.pool.query<{ schema: string }>(
      "SELECT n.nspname AS schema FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'",
    );
    const window = await openStatementWindow(scratch.pool, 'a test');

    if (rows[0]!.loaded) {
      expect(window).toBeDefined();
      // A statement of this test's own, run a known number of times: on a table of its own, since
      // pg_stat_statements tells statements apart by the tables they name, not by their aliases
      // or constants (a text differing only in those is counted as the first one seen).
      const table = `${scratch.schema}_marker`;
      await scratch.pool.query(`CREATE TABLE ${table} (n integer)`);
      for (let n = 0; n < 3; n += 1) await scratch.pool.query(`SELECT count(*) FROM ${table} WHERE n = $1`, [n]);
      const ran = await window!.close();
      const mine = ran.find((statement) => statement.query.startsWith('SELECT count(*) FROM') && statement.query.includes(table));
      expect(mine).toMatchObject({ calls: 3, rows: 3 });
    } else {
      expect(window).toBeUndefined();
      // The view tried for the read was made in the test's schema, which takes it along; no other moved or appeared.
      const { rows: after } = await scratch.pool.query<{ schema: string }>(
        "SELECT n.nspname AS schema FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'",
      );
      expect(after.filter((row) => row.schema !== scratch.schema)).toEqual(before);
    }
  });
});
