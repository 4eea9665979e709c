import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AvroRecordSchema } from './usageEventSchema';

// `src/` and `dist/` are both one level below the package root, so the path holds for either.
const ledgerEventAvroSchemaPath = join(__dirname, '..', 'avro', 'ledger-event.avsc');

/**
 * The value schema of the `credit-ledger` topic (subject `credit-ledger-value`). The `.avsc` file
 * is the source of truth, the one reviewers and non-TypeScript consumers read; this module only
 * locates and parses it, so the two can never differ.
 */
export const ledgerEventAvroSchema: AvroRecordSchema = JSON.parse(readFileSync(ledgerEventAvroSchemaPath, 'utf8'));
