/**
 * The API key that made a change, as it was at the change: its id (a prefix of its SHA-256, never
 * the key) and the name it was configured with (`TALLY_API_KEYS=key:scopes:name`), if any. What
 * product versions, plans, subscriptions and webhook endpoints record as `changedBy`, `createdBy`,
 * `canceledBy` or `updatedBy`.
 */
export interface ActingKey {
  readonly keyId: string;
  readonly keyName: string | null;
}
