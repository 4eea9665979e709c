import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { checkEventId, validateAppendRequests } from './appendValidation';
import { InvalidEventStoreRequestError } from './errors';

/** The definition checkEventId's one pass over the characters must keep. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

describe('checkEventId', () => {
  it('accepts what the UUID expression accepts, in lower case, and refuses the rest', () => {
    // UUIDs with one character changed (a digit out of range, a dash moved, a case flipped), among any strings.
    const nearUuid = fc
      .tuple(fc.uuid(), fc.nat(36), fc.constantFrom('g', 'G', 'A', 'f', 'F', '-', '0', ' ', 'é', ''))
      .map(([uuid, at, by]) => `${uuid.slice(0, at)}${by}${uuid.slice(at + 1)}`);
    fc.assert(
      fc.property(fc.oneof(nearUuid, fc.uuid(), fc.uuid().map((uuid) => uuid.toUpperCase()), fc.string()), (id) => {
        if (UUID.test(id)) expect(checkEventId(id)).toBe(id.toLowerCase());
        else expect(() => checkEventId(id)).toThrow(InvalidEventStoreRequestError);
      }),
      { numRuns: 5000 },
    );
    expect(() => checkEventId(42 as unknown as string)).toThrow(InvalidEventStoreRequestError);
  });
});

describe('validateAppendRequests', () => {
  it("hands on the caller's event when nothing needs normalising, and a normalised copy otherwise, never changing the caller's", () => {
    const lower = { id: randomUUID(), type: 'T', data: { a: 1 }, metadata: { m: 'x' } };
    const upper = { id: randomUUID().toUpperCase(), type: 'T', data: {}, metadata: {} };
    const bare = { id: randomUUID(), type: 'T', data: {} };
    const [payload] = validateAppendRequests([{ streamId: 's', expectedRevision: 'any', events: [lower, upper, bare] }]);
    expect(payload!.events[0]).toBe(lower);
    expect(payload!.events[1]).toEqual({ ...upper, id: upper.id.toLowerCase() });
    expect(upper.id).toBe(upper.id.toUpperCase());
    expect(payload!.events[2]).toEqual({ ...bare, metadata: {} });
    expect(bare).not.toHaveProperty('metadata');
  });
});
