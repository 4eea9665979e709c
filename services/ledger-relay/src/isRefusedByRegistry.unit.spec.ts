import { isRefusedByRegistry } from './ledgerRelay';

function registryError(status: number, message: string): Error {
  return Object.assign(new Error(message), { status });
}

describe('isRefusedByRegistry', () => {
  it('gives up on an incompatible or invalid schema', () => {
    expect(isRefusedByRegistry(registryError(409, 'Schema being registered is incompatible with an earlier schema'))).toBe(true);
    expect(isRefusedByRegistry(registryError(422, 'Invalid schema'))).toBe(true);
  });

  it('gives up on credentials the registry refuses, which waiting does not change', () => {
    expect(isRefusedByRegistry(registryError(401, 'Unauthorized'))).toBe(true);
    expect(isRefusedByRegistry(registryError(403, 'Forbidden'))).toBe(true);
  });

  it("retries the lost race of two first registrations setting the subject's compatibility", () => {
    expect(
      isRefusedByRegistry(registryError(409, "Confluent_Schema_Registry_Error: A rule named 'COMPATIBILITY' already exists."))
    ).toBe(false);
  });

  it('retries what is not an answer about the schema (outages, timeouts)', () => {
    expect(isRefusedByRegistry(registryError(503, 'Service Unavailable'))).toBe(false);
    expect(isRefusedByRegistry(new Error('connect ECONNREFUSED'))).toBe(false);
  });
});
