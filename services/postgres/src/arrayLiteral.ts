/**
 * PostgreSQL array literals ('{a,b,NULL}') for query parameters that carry a column of a batch.
 * pg writes a JS array parameter element by element, quoting and regex-escaping every one of
 * them; for the thousands of elements of a metering chunk that was a twelfth of everything the
 * consumer allocated (docs/benchmarks.md). These write an element as it is where array_in reads
 * it back unchanged, and quote only the others, so the text PostgreSQL parses is the same.
 */

/** Characters array_in takes unquoted and unchanged: letters, digits and - _ . : / @ + = ~. */
function isPlainElementCode(code: number): boolean {
  return (
    (code >= 97 && code <= 122) || // a-z
    (code >= 65 && code <= 90) || // A-Z
    (code >= 48 && code <= 58) || // 0-9 and ':'
    code === 45 || // -
    code === 95 || // _
    code === 46 || // .
    code === 47 || // /
    code === 64 || // @
    code === 43 || // +
    code === 61 || // =
    code === 126 // ~
  );
}

function textElement(value: string): string {
  let plain = value.length > 0 && !(value.length === 4 && value.toLowerCase() === 'null');
  for (let i = 0; plain && i < value.length; i += 1) plain = isPlainElementCode(value.charCodeAt(i));
  // Inside double quotes only '"' and '\' are special (array_in), each escaped by a backslash.
  return plain ? value : `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/** A text[] (or uuid[], or any type whose input is its text) literal; null elements are NULL. */
export function textArrayLiteral(values: readonly (string | null)[]): string {
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i += 1) {
    const value = values[i]!;
    parts[i] = value === null ? 'NULL' : textElement(value);
  }
  return `{${parts.join(',')}}`;
}

/**
 * An integer[] or bigint[] literal of safe integers or decimal integer strings; null elements are
 * NULL. Anything else throws: a number such as 1.5 or 1e21 would not be read back as written.
 */
export function integerArrayLiteral(values: readonly (number | string | null)[]): string {
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i += 1) {
    const value = values[i]!;
    if (value === null) parts[i] = 'NULL';
    else if (typeof value === 'number' ? Number.isSafeInteger(value) : /^-?[0-9]+$/.test(value)) parts[i] = String(value);
    else throw new TypeError(`not an integer for an array literal: ${String(value)}`);
  }
  return `{${parts.join(',')}}`;
}
