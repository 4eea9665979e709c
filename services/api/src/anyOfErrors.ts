/** The fields of an Ajv error that narrowing uses. */
interface AnyOfCandidateError {
  readonly keyword: string;
  readonly instancePath: string;
  readonly schemaPath?: string;
}

/**
 * Ajv reports a value that fits none of an `anyOf`'s forms with every form's errors plus "must
 * match a schema in anyOf": a period of `{ "days": 0 }` is said not to be a string, not to be
 * "month" or "year", to have days below 1, and to match no form. When exactly one form is of the
 * value's type (no `type` error on the value itself), that is the form meant: only its errors are
 * kept, and the anyOf summary goes. Otherwise (no form or several of its type) all are kept.
 */
export function errorsOfTheFormMeant<E extends AnyOfCandidateError>(errors: readonly E[]): E[] {
  const dropped = new Set<E>();
  for (const anyOf of errors) {
    if (anyOf.keyword !== 'anyOf' || anyOf.schemaPath === undefined) continue;
    const prefix = `${anyOf.schemaPath}/`;
    const byForm = new Map<string, E[]>();
    for (const error of errors) {
      if (error.schemaPath === undefined || !error.schemaPath.startsWith(prefix)) continue;
      const form = error.schemaPath.slice(prefix.length).split('/')[0]!;
      byForm.set(form, [...(byForm.get(form) ?? []), error]);
    }
    const ofValueType = [...byForm.values()].filter(
      (formErrors) => !formErrors.some((error) => error.keyword === 'type' && error.instancePath === anyOf.instancePath),
    );
    if (ofValueType.length !== 1) continue;
    const meant = new Set(ofValueType[0]);
    for (const formErrors of byForm.values()) for (const error of formErrors) if (!meant.has(error)) dropped.add(error);
    dropped.add(anyOf);
  }
  return errors.filter((error) => !dropped.has(error));
}
