/**
 * Schema names reach SQL text (CREATE SCHEMA, search_path, the connection's `options`), where
 * they cannot be bound as parameters. Accepting only plain lower-case identifiers keeps them
 * free of quoting and escaping rules, which is all Tally needs (`public`, `tally`, test schemas).
 */
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

export function assertSqlIdentifier(name: string, what = 'identifier'): string {
  if (!IDENTIFIER.test(name)) {
    throw new Error(`${what} must match ${IDENTIFIER.source}; got ${JSON.stringify(name)}`);
  }
  return name;
}

export function quoteIdentifier(name: string): string {
  return `"${assertSqlIdentifier(name)}"`;
}
