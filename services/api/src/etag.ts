import { Type } from '@sinclair/typebox';
import { IF_MATCH_PATTERN } from './apiSchemas';

/**
 * Versions over HTTP, for every resource changed against the version read (a credit product, a
 * balance's settings): the version answered as the ETag, quoted as HTTP has entity tags, and sent
 * back as `If-Match`; a change of a version another change replaced is 412 (its service's typed
 * error, mapped in errorMapping.ts).
 */

/**
 * The headers of a change made against the version read: an optional `If-Match`, the resource's
 * ETag or `*` (IF_MATCH_PATTERN, the same for every resource); `description` says whose ETag.
 */
export const ifMatchHeader = (description: string) =>
  Type.Object({ 'if-match': Type.Optional(Type.String({ pattern: IF_MATCH_PATTERN, description })) });

/** The ETag of a resource at `version`. */
export const etagOf = (version: number | bigint | string): string => `"${version}"`;

/**
 * The version an `If-Match` header names (its route's schema admits only a quoted version or `*`);
 * undefined for none, or for `*` (any version matches).
 */
export function versionOfIfMatch(ifMatch: string | undefined): string | undefined {
  return ifMatch === undefined || ifMatch === '*' ? undefined : ifMatch.slice(1, -1);
}
