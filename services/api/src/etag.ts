/**
 * Versions over HTTP, for every resource changed against the version read (a credit product, a
 * balance's settings): the version answered as the ETag, quoted as HTTP has entity tags, and sent
 * back as `If-Match`; a change of a version another change replaced is 412 (its service's typed
 * error, mapped in errorMapping.ts).
 */

/** The ETag of a resource at `version`. */
export const etagOf = (version: number | bigint | string): string => `"${version}"`;

/**
 * The version an `If-Match` header names (its route's schema admits only a quoted version or `*`);
 * undefined for none, or for `*` (any version matches).
 */
export function versionOfIfMatch(ifMatch: string | undefined): string | undefined {
  return ifMatch === undefined || ifMatch === '*' ? undefined : ifMatch.slice(1, -1);
}
