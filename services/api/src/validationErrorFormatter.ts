import { PATTERN_MESSAGES } from './apiSchemas';

/** The fields of an Ajv error that the message uses. */
interface SchemaError {
  readonly keyword: string;
  readonly instancePath: string;
  readonly message?: string;
  readonly params: Record<string, unknown>;
}

/**
 * Fastify's schemaErrorFormatter: one readable sentence per failure, naming the field as
 * `body.credits` and saying what a pattern means rather than printing the regular expression.
 */
export function validationErrorFormatter(errors: readonly SchemaError[], dataVar: string): Error {
  const sentences = errors.map((error) => {
    const field = `${dataVar}${error.instancePath.replace(/\//g, '.')}`;
    if (error.keyword === 'additionalProperties') return `${field} has an unknown property "${String(error.params.additionalProperty)}"`;
    if (error.keyword === 'pattern') {
      const meaning = PATTERN_MESSAGES[String(error.params.pattern)];
      // Never the regular expression itself: people read these messages.
      return `${field} ${meaning ?? 'is not in the format the API document gives for it'}`;
    }
    if (error.keyword === 'format' && error.params.format === 'date-time') return `${field} must be a date-time such as "2026-01-31T12:00:00Z"`;
    return `${field} ${error.message ?? 'is invalid'}`;
  });
  return new Error(sentences.join('; '));
}
