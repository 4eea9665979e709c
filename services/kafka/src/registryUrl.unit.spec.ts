import { registryUrlProblem } from './registryUrl';

describe('registryUrlProblem', () => {
  const where = 'TALLY_SCHEMA_REGISTRY_USERNAME and TALLY_SCHEMA_REGISTRY_PASSWORD';

  it('takes an http or https URL without credentials', () => {
    expect(registryUrlProblem('http://127.0.0.1:8081/apis/ccompat/v7', where)).toBeUndefined();
    expect(registryUrlProblem('https://registry.internal:8443/apis/ccompat/v7', where)).toBeUndefined();
  });

  it.each([
    ['another scheme', 'ftp://registry.internal'],
    ['a host and port without a scheme (a scheme "localhost:" to URL)', 'localhost:8081'],
    ['what does not parse', 'http://tally:s3cret@[::1'],
  ])('refuses %s', (_name, text) => {
    expect(registryUrlProblem(text, where)).toBe('an http or https URL');
  });

  // fetch() refuses every request to a URL with credentials: the registry would be unreachable for ever.
  it('refuses credentials in the URL, saying where they go, and never echoes them', () => {
    for (const text of ['https://reg:s3cret@registry.internal/apis/ccompat/v7', 'https://reg@registry.internal']) {
      const problem = registryUrlProblem(text, where);
      expect(problem).toBe(`no user:password@ in the URL; give them in ${where}`);
      expect(problem).not.toMatch(/s3cret|reg@/);
    }
  });
});
