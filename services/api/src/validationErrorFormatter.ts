import { errorsOfTheFormMeant } from './anyOfErrors';
import { PATTERN_MESSAGES } from './apiSchemas';

/** The fields of an Ajv error that the message uses. */
interface SchemaError {
  readonly keyword: string;
  readonly instancePath: string;
  readonly message?: string;
  readonly params: Record<string, unknown>;
  /** Set on the failure of an object's property name (`propertyNames`), which Ajv reports at the object. */
  readonly propertyName?: string;
}

/**
 * Fastify's schemaErrorFormatter: one readable sentence per failure, naming the field as
 * `body.credits` and saying what a pattern means rather than printing the regular expression.
 */
export function validationErrorFormatter(allErrors: readonly SchemaError[], dataVar: string): Error {
  // Of a value that fits no form of an anyOf, the errors of the form it meant (anyOfErrors.ts).
  const errors = errorsOfTheFormMeant(allErrors);
  // A property name's failure is said of the name (below); Ajv's summary of it ("property name must be valid") then adds nothing.
  const namesSaid = errors.some((error) => error.propertyName !== undefined);
  const sentences = errors.filter((error) => !(namesSaid && error.keyword === 'propertyNames')).map((error) => {
    const field = `${dataVar}${error.instancePath.replace(/\//g, '.')}`;
    if (error.propertyName === '') return `${field} has a property with no name`;
    const subject = error.propertyName !== undefined ? `${field} has a property name that` : field;
    if (error.keyword === 'additionalProperties') return `${field} has an unknown property "${String(error.params.additionalProperty)}"`;
    if (error.keyword === 'pattern') {
      const meaning = PATTERN_MESSAGES[String(error.params.pattern)];
      // Never the regular expression itself: people read these messages.
      return `${subject} ${meaning ?? 'is not in the format the API document gives for it'}`;
    }
    if (error.keyword === 'format' && error.params.format === 'date-time') return `${subject} must be a date-time such as "2026-01-31T12:00:00Z"`;
    return `${subject} ${error.message ?? 'is invalid'}`;
  });
  return new Error(sentences.join('; '));
}
