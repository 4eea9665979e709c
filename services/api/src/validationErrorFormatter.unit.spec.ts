import { validationErrorFormatter } from './validationErrorFormatter';

/** Ajv's errors for an object's property names (`propertyNames`): the name's failure, then a summary of it. */
const propertyNameErrors = (propertyName: string, keyword: string, message: string) => [
  { keyword, instancePath: '/consumption/0/where', propertyName, message, params: { limit: 1 } },
  { keyword: 'propertyNames', instancePath: '/consumption/0/where', message: 'property name must be valid', params: { propertyName } },
];

describe("the API's validation messages", () => {
  it('say that an object has a property with no name, once, naming the object', () => {
    expect(validationErrorFormatter(propertyNameErrors('', 'minLength', 'must NOT have fewer than 1 characters'), 'body').message).toBe(
      'body.consumption.0.where has a property with no name',
    );
  });

  it('say what is wrong with a property name, as a name rather than as the object', () => {
    expect(validationErrorFormatter(propertyNameErrors('x'.repeat(257), 'maxLength', 'must NOT have more than 256 characters'), 'body').message).toBe(
      'body.consumption.0.where has a property name that must NOT have more than 256 characters',
    );
  });
});
