import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import { WebhookUrlRefusedError, WebhookUrlUnresolvedError } from './webhookErrors';

const IPV4_COMPATIBLE = ipaddr.parseCIDR('::/96');

/**
 * Whether an address is one a webhook may be sent to: only ordinary global unicast. Loopback,
 * private (RFC 1918, IPv6 unique local), link-local (and with it 169.254.169.254, the cloud
 * metadata service), carrier-grade NAT, multicast, reserved and the IPv6 ranges that embed an
 * IPv4 address (6to4, Teredo, NAT64, IPv4-compatible) are refused: a customer-supplied URL must
 * not reach Tally's own network. ipaddr.js's range tables classify; IPv4-mapped IPv6 is
 * unwrapped first.
 */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  const parsed = ipaddr.process(address);
  // IPv4-compatible IPv6 (::/96, deprecated by RFC 4291) is "unicast" to ipaddr.js, yet embeds an
  // IPv4 address: the URL parser writes [::127.0.0.1] as [::7f00:1]. None is a public receiver.
  if (parsed.kind() === 'ipv6' && parsed.match(IPV4_COMPATIBLE)) return false;
  return parsed.range() === 'unicast';
}

export interface AddressPolicy {
  /** TALLY_WEBHOOKS_ALLOW_PRIVATE_NETWORKS: every address is allowed (tests, a receiver on the same host). */
  readonly allowPrivateNetworks: boolean;
}

function refusal(host: string, address: string): WebhookUrlRefusedError {
  return new WebhookUrlRefusedError(
    `${host} resolves to ${address}, a loopback, private, link-local or otherwise non-public address; ` +
      'webhooks are not sent there unless TALLY_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=true',
  );
}

/**
 * A DNS lookup for http.request's `lookup` option that refuses non-public addresses. The check
 * runs on the address the socket then connects to, at connect time, so a name that resolved
 * to a public address when the endpoint was registered and to 127.0.0.1 now (DNS rebinding)
 * is still refused.
 */
export function guardedLookup(policy: AddressPolicy): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
      if (error) return callback(error, '', 0);
      const allowed = policy.allowPrivateNetworks ? addresses : addresses.filter((entry) => isPublicAddress(entry.address));
      const first = allowed[0];
      if (first === undefined) {
        return callback(refusal(hostname, addresses[0]?.address ?? 'no address') as NodeJS.ErrnoException, '', 0);
      }
      if (options.all) return (callback as unknown as (e: null, all: LookupAddress[]) => void)(null, allowed);
      return callback(null, first.address, first.family);
    });
  };
}

/**
 * Checks a URL before it is stored or sent to: http or https, no credentials in it, and a host
 * that resolves only to addresses the policy allows (all of them: refusing at registration
 * what the connect-time check would refuse at every delivery). Throws WebhookUrlRefusedError, or
 * WebhookUrlUnresolvedError (retriable) when DNS failed for the moment.
 */
export async function assertDeliverableUrl(text: string, policy: AddressPolicy): Promise<URL> {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new WebhookUrlRefusedError(`url is not an absolute URL: ${JSON.stringify(text)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new WebhookUrlRefusedError('url must be http or https');
  if (url.username !== '' || url.password !== '') throw new WebhookUrlRefusedError('url must not carry credentials');
  if (policy.allowPrivateNetworks) return url;
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const addresses = isIP(host) !== 0 ? [host] : await resolveAll(host);
  const refused = addresses.find((address) => !isPublicAddress(address));
  if (refused !== undefined) throw refusal(host, refused);
  return url;
}

/**
 * What dns.lookup (getaddrinfo) reports for a name that does not exist: only that says the URL is
 * bad. Any other failure (a server that timed out or failed, EAI_FAIL, EAI_SYSTEM...) may pass,
 * so the registration is answered 503 to retry rather than refused.
 */
const NOT_FOUND_DNS_CODES = new Set(['ENOTFOUND', 'EAI_NONAME', 'EAI_NODATA']);

async function resolveAll(host: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    dnsLookup(host, { all: true }, (error, addresses) => {
      const why = error?.code ?? error?.message;
      if (error && NOT_FOUND_DNS_CODES.has(error.code ?? '')) reject(new WebhookUrlRefusedError(`${host} does not resolve (${why})`));
      else if (error) reject(new WebhookUrlUnresolvedError(`${host} could not be resolved just now (${why}); try again`));
      else resolve(addresses.map((entry) => entry.address));
    });
  });
}
