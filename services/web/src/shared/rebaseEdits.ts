/** A form's edits put on the version stored now: what the forms do after a save refused for a change made meanwhile (412). */
export interface RebasedEdits<T, K extends keyof T> {
  /** The version stored now with each field the operator changed as the operator typed it: what the form shows and saves next. */
  readonly values: T;
  /** The fields the operator changed from the version read, in the order of `fields`. */
  readonly mine: K[];
  /** The fields stored now with a value other than the one read: the other change's. */
  readonly theirs: K[];
  /** Of the fields both changed, those set differently: the typing is kept, and replaces theirs on the next save. */
  readonly conflicts: K[];
}

/**
 * The one per-field merge of the console's forms after a 412: a field the operator changed from
 * `read` keeps what was typed; a field left as read takes its value `now` (the other change stays);
 * anything of `now` that is no field in `fields` is kept as it is now. A conflict is a field both
 * changed, to different values; the same value set by both is none. `same` compares two values of
 * a field (strings by default; the product form's lists compare whole).
 */
export function rebaseEdits<T, K extends keyof T>(
  fields: readonly K[],
  read: T,
  typed: T,
  now: T,
  same: (a: T[K], b: T[K]) => boolean = Object.is,
): RebasedEdits<T, K> {
  const mine = fields.filter((field) => !same(read[field], typed[field]));
  const theirs = fields.filter((field) => !same(read[field], now[field]));
  const values = { ...now };
  for (const field of mine) values[field] = typed[field];
  return { values, mine, theirs, conflicts: mine.filter((field) => theirs.includes(field) && !same(typed[field], now[field])) };
}
