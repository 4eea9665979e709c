import { formatStatementTable, statementsBetween, type StatementFigures } from './pgStatements';

const figures = (calls: number, totalMs: number, blocksRead: number, rows: number, query: string): StatementFigures => ({ calls, totalMs, blocksRead, rows, query });

describe('statementsBetween', () => {
  it('subtracts the counters before from those after, most time first, and leaves out what did not run', () => {
    const before = new Map([
      ['10/1', figures(5, 50, 10, 5, 'SELECT append_events($1)')],
      ['10/2', figures(3, 9, 0, 3, 'SELECT 1')],
    ]);
    const after = new Map([
      ['10/1', figures(15, 250, 40, 25, 'SELECT append_events($1)')],
      ['10/2', figures(3, 9, 0, 3, 'SELECT 1')],
      ['10/3', figures(2, 300, 7, 2000, 'SELECT id FROM credit_balances WHERE customer_id = ANY($1)')],
    ]);
    expect(statementsBetween(before, after)).toEqual([
      figures(2, 300, 7, 2000, 'SELECT id FROM credit_balances WHERE customer_id = ANY($1)'),
      figures(10, 200, 30, 20, 'SELECT append_events($1)'),
    ]);
  });

  it('counts a statement first seen after the window opened whole', () => {
    expect(statementsBetween(new Map(), new Map([['10/7', figures(1, 2, 3, 4, 'SELECT 7')]]))).toEqual([figures(1, 2, 3, 4, 'SELECT 7')]);
  });
});

describe('formatStatementTable', () => {
  it('gives each statement its time per call and blocks read per call, cut and escaped for a markdown cell', () => {
    const table = formatStatementTable([figures(4, 100, 10, 8, 'SELECT a | b FROM `t`'), figures(1, 1, 0, 1, 'x'.repeat(50))], 1, 30).split('\n');
    expect(table[2]).toBe("| 4 | 100 | 25.00 | 2.5 | 8 | `SELECT a \\| b FROM 't'` |");
    expect(table[3]).toBe('| | | | | | and 1 more statements |');
    expect(formatStatementTable([figures(1, 1, 0, 1, 'x'.repeat(50))], 15, 20).split('\n')[2]).toContain(`\`${'x'.repeat(19)}…\``);
  });
});
