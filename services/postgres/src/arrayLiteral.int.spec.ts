import fc from 'fast-check';
import pg from 'pg';
import { stackConfig } from '@tally/test-support';
import { integerArrayLiteral, textArrayLiteral } from './arrayLiteral';

describe('array literals, read back by PostgreSQL', () => {
  const pool = new pg.Pool({ connectionString: stackConfig.testDatabaseUrl, max: 2 });
  afterAll(() => pool.end());

  const readText = async (literal: string): Promise<(string | null)[]> =>
    (await pool.query<{ a: (string | null)[] }>('SELECT $1::text[] AS a', [literal])).rows[0]!.a;

  it('gives back every text element as written: quotes, backslashes, braces, commas, blanks, "NULL" spelled out, non-ASCII, nulls', async () => {
    const values = ['', 'NULL', 'null', 'Null', ' lead', 'trail ', 'a b', 'tab\there', 'new\nline', '"', '\\', '\\"', '{}', 'a,b', "it's", 'élan', '😀', 'balance-1', 'a:b/c@d+e=f~g.h_i'];
    expect(await readText(textArrayLiteral([...values, null]))).toEqual([...values, null]);
  });

  it('gives back any array of strings PostgreSQL can hold (no NUL), and reads it as pg itself would send it', async () => {
    // Array syntax and spellings of NULL, often, among any characters.
    const unit = fc.oneof(fc.constantFrom('a', 'N', 'U', 'L', 'l', ' ', '"', '\\', ',', '{', '}', '\t', '\n', 'é'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }));
    const element = fc.option(fc.string({ unit, maxLength: 12 }).filter((text) => !text.includes('\u0000')), { nil: null });
    await fc.assert(
      fc.asyncProperty(fc.array(element, { maxLength: 8 }), async (values) => {
        const ours = await readText(textArrayLiteral(values));
        const theirs = (await pool.query<{ a: (string | null)[] }>('SELECT $1::text[] AS a', [values])).rows[0]!.a;
        expect(ours).toEqual(values);
        expect(theirs).toEqual(values);
      }),
      { numRuns: 200 },
    );
  });

  it('writes integers, decimal strings beyond 2^53 and nulls as bigint[], and refuses what is not an integer', async () => {
    const literal = integerArrayLiteral([0, -7, Number.MAX_SAFE_INTEGER, '9223372036854775807', '-12', null]);
    const { rows } = await pool.query<{ a: (string | null)[] }>('SELECT $1::bigint[]::text[] AS a', [literal]);
    expect(rows[0]!.a).toEqual(['0', '-7', String(Number.MAX_SAFE_INTEGER), '9223372036854775807', '-12', null]);
    expect(() => integerArrayLiteral([1.5])).toThrow(TypeError);
    expect(() => integerArrayLiteral([1e21])).toThrow(TypeError);
    expect(() => integerArrayLiteral(['1 OR 1'])).toThrow(TypeError);
    expect(integerArrayLiteral([])).toBe('{}');
  });
});
