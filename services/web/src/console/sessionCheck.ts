import { ApiError, errorMessage } from '../shared/apiClient';

/**
 * What a failed GET /v1/console-sessions/current means. Only 401 (no valid session: expired,
 * signed out, its key changed) and 404 (no session cookie) say the operator is signed out;
 * anything else (429, 503, no answer at all) says nothing about the session, which may well be
 * valid: the console says what failed rather than ask for the key again.
 */
export function sessionCheckFailure(failure: unknown): { readonly signedOut: true } | { readonly signedOut: false; readonly message: string } {
  if (failure instanceof ApiError && (failure.status === 401 || failure.status === 404)) return { signedOut: true };
  return { signedOut: false, message: `The session could not be checked: ${errorMessage(failure)}` };
}
