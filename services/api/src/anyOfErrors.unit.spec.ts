import { errorsOfTheFormMeant } from './anyOfErrors';
import { validationErrorFormatter } from './validationErrorFormatter';

/** Ajv's errors (allErrors off) for a plan item's period, `"month"`, `"year"` or `{ "days": n }`, given `value`. */
function periodErrors(value: 'days0' | 'week' | 'number') {
  const at = '/items/0/period';
  const schemaPath = '#/properties/items/items/properties/period/anyOf';
  const notAString = { keyword: 'type', instancePath: at, schemaPath: `${schemaPath}/0/type`, message: 'must be string', params: { type: 'string' } };
  const notAnEnum = { keyword: 'enum', instancePath: at, schemaPath: `${schemaPath}/0/enum`, message: 'must be equal to one of the allowed values', params: {} };
  const notAnObject = { keyword: 'type', instancePath: at, schemaPath: `${schemaPath}/1/type`, message: 'must be object', params: { type: 'object' } };
  const anyOf = { keyword: 'anyOf', instancePath: at, schemaPath, message: 'must match a schema in anyOf', params: {} };
  if (value === 'days0') {
    const minimum = { keyword: 'minimum', instancePath: `${at}/days`, schemaPath: `${schemaPath}/1/properties/days/minimum`, message: 'must be >= 1', params: {} };
    return [notAString, notAnEnum, minimum, anyOf];
  }
  return value === 'week' ? [notAnEnum, notAnObject, anyOf] : [notAString, notAnEnum, notAnObject, anyOf];
}

describe('the errors of the form an anyOf value meant', () => {
  it("keeps only the errors of the one form of the value's type: { days: 0 } is about days", () => {
    expect(validationErrorFormatter(errorsOfTheFormMeant(periodErrors('days0')), 'body').message).toBe('body.items.0.period.days must be >= 1');
    expect(validationErrorFormatter(errorsOfTheFormMeant(periodErrors('week')), 'body').message).toBe(
      'body.items.0.period must be equal to one of the allowed values',
    );
  });

  it('leaves them all when no form, or several, is of the value type', () => {
    expect(errorsOfTheFormMeant(periodErrors('number'))).toEqual(periodErrors('number'));
  });

  it('leaves errors outside any anyOf alone, in order', () => {
    const other = { keyword: 'required', instancePath: '', schemaPath: '#/required', message: "must have required property 'name'", params: {} };
    expect(errorsOfTheFormMeant([other, ...periodErrors('days0')]).map((error) => error.message)).toEqual(["must have required property 'name'", 'must be >= 1']);
  });
});
