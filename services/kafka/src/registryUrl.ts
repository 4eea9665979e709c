/**
 * Why a schema registry URL cannot serve, if it cannot, as the one rule for every caller (the
 * configuration, the consumer's and the relay's options): a phrase for "<name>: <problem>",
 * never the URL's text, which may hold a password. fetch() refuses every request to a URL with
 * user:password@, so such a URL would leave the registry unreachable for ever; its credentials
 * go in `credentialsIn` (the variables or the option that carry them).
 */
export function registryUrlProblem(text: string, credentialsIn: string): string | undefined {
  if (!URL.canParse(text)) return 'an http or https URL';
  const url = new URL(text);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'an http or https URL';
  if (url.username !== '' || url.password !== '') return `no user:password@ in the URL; give them in ${credentialsIn}`;
  return undefined;
}
