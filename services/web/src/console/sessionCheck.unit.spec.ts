import { ApiError } from '../shared/apiClient';
import { sessionCheckFailure } from './sessionCheck';

describe("the console's reading of its session after a load", () => {
  it('shows the sign-in form only when the API says there is no session', () => {
    expect(sessionCheckFailure(new ApiError(401, 'unauthorized', 'the session has expired; sign in again'))).toEqual({ signedOut: true });
    expect(sessionCheckFailure(new ApiError(404, 'no_console_session', 'this request carries no console session cookie'))).toEqual({ signedOut: true });
  });

  it('says what failed, and keeps the session, for a refusal that is not about the session or a request that got no answer', () => {
    expect(sessionCheckFailure(new ApiError(429, 'rate_limited', 'too many requests with this key; retry after 3 s'))).toEqual({
      signedOut: false,
      message: 'The session could not be checked: too many requests with this key; retry after 3 s',
    });
    expect(sessionCheckFailure(new ApiError(503, 'sign_in_state_unavailable', 'the console session could not be checked; retry shortly'))).toMatchObject({ signedOut: false });
    expect(sessionCheckFailure(new TypeError('Failed to fetch'))).toEqual({ signedOut: false, message: 'The session could not be checked: Failed to fetch' });
  });
});
