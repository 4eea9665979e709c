import { promises as dnsPromises, type LookupAddress } from 'node:dns';
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
  /** How names are resolved; by default the system's DNS servers (resolv.conf). */
  readonly dns?: DnsOptions;
}

export interface DnsOptions {
  /** DNS servers to ask instead of the system's (`host` or `host:port`): tests point it at their own. */
  readonly servers?: readonly string[];
  /**
   * How long a query's first try waits for an answer; c-ares doubles it on each later try, and
   * tries each server in turn. Default 1000 ms.
   */
  readonly timeoutMs?: number;
  /** Tries per server before the name is unresolved (ETIMEOUT); default 2. */
  readonly tries?: number;
  /**
   * The system resolver, asked only once DNS said the name does not exist as given; by default
   * dns.lookup (getaddrinfo: /etc/hosts, the search list, ndots). Tests inject their own.
   */
  readonly lookup?: (host: string) => Promise<LookupAddress[]>;
}

const DEFAULT_DNS_TIMEOUT_MS = 1_000;
const DEFAULT_DNS_TRIES = 2;

/**
 * `localhost` and the names under it are loopback by definition (RFC 6761 §6.3), so they are
 * answered here, with no query and no worker thread, and then refused or allowed like any
 * loopback address.
 */
const LOOPBACK = ['127.0.0.1', '::1'];

/**
 * What c-ares reports for a name that does not exist, or has no address (and dns.lookup, for
 * either: its EAI_NONAME and EAI_NODATA): only that says the URL is bad.
 */
const NOT_FOUND_DNS_CODES = new Set(['ENOTFOUND', 'ENODATA']);

/** A host's addresses, or the DNS error (ErrnoException, `code` as c-ares says it) when it has none. */
type ResolveHost = (host: string) => Promise<string[]>;

/**
 * Resolves through c-ares (dns.promises.Resolver) first, not dns.lookup: getaddrinfo blocks one
 * of libuv's 4 shared worker threads for as long as a name's DNS server takes, with no timeout of
 * its own, so a few receivers whose DNS hangs would hold every thread, and every other
 * endpoint's lookup (and the process's file I/O) would queue behind them. c-ares queries on the
 * event loop: a try waits `timeoutMs`, each later one twice the one before, at each server in
 * turn (with the defaults up to 3 s with one server, 6 s with two). An IP literal is its own
 * address.
 *
 * c-ares sends the name as given: no search list, no ndots, no /etc/hosts. So once DNS has
 * answered that the name does not exist as given (both families), the system resolver is asked
 * (getaddrinfo): a Kubernetes short name (`receiver.ns`), an `extra_hosts` entry or
 * `host.docker.internal` resolve as everywhere else. Only then: a name whose DNS times out or
 * fails never reaches a worker thread.
 */
function createHostResolver(options: DnsOptions = {}): ResolveHost {
  const resolver = new dnsPromises.Resolver({ timeout: options.timeoutMs ?? DEFAULT_DNS_TIMEOUT_MS, tries: options.tries ?? DEFAULT_DNS_TRIES });
  if (options.servers !== undefined) resolver.setServers([...options.servers]);
  const systemLookup = options.lookup ?? ((host: string) => dnsPromises.lookup(host, { all: true }));
  return async (host) => {
    if (isIP(host) !== 0) return [host];
    const name = host.toLowerCase().replace(/\.$/, '');
    if (name === 'localhost' || name.endsWith('.localhost')) return LOOPBACK;
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
    const addresses = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
    if (addresses.length > 0) return addresses;
    // Neither family has an address: "not found" only when both say so, else what failed.
    const failures = [v4, v6].map((result) => (result.status === 'rejected' ? (result.reason as NodeJS.ErrnoException) : undefined));
    const failure = failures.find((error) => error !== undefined && !NOT_FOUND_DNS_CODES.has(error.code ?? '')) ?? failures[0] ?? failures[1];
    if (failure !== undefined && !NOT_FOUND_DNS_CODES.has(failure.code ?? '')) throw failure;
    return (await systemLookup(host)).map((entry) => entry.address);
  };
}

function refusal(host: string, address: string): WebhookUrlRefusedError {
  return new WebhookUrlRefusedError(
    `${host} resolves to ${address}, a loopback, private, link-local or otherwise non-public address; ` +
      'webhooks are not sent there unless TALLY_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=true',
  );
}

/**
 * A DNS lookup for http.request's `lookup` option that refuses non-public addresses. The check
 * runs on the addresses the socket then connects to, at connect time, so a name that resolved
 * to a public address when the endpoint was registered and to 127.0.0.1 now (DNS rebinding)
 * is still refused.
 */
export function guardedLookup(policy: AddressPolicy): LookupFunction {
  const resolve = createHostResolver(policy.dns);
  return (hostname, options, callback) => {
    resolve(hostname).then(
      (resolved) => {
        const family = options.family === 4 || options.family === 'IPv4' ? 4 : options.family === 6 || options.family === 'IPv6' ? 6 : 0;
        const addresses: LookupAddress[] = resolved
          .map((address) => ({ address, family: isIP(address) }))
          .filter((entry) => family === 0 || entry.family === family);
        const allowed = policy.allowPrivateNetworks ? addresses : addresses.filter((entry) => isPublicAddress(entry.address));
        const first = allowed[0];
        if (first === undefined) {
          return callback(refusal(hostname, addresses[0]?.address ?? 'no address') as NodeJS.ErrnoException, '', 0);
        }
        if (options.all) return (callback as unknown as (e: null, all: LookupAddress[]) => void)(null, allowed);
        return callback(null, first.address, first.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, '', 0),
    );
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
  const addresses = await resolveAll(host, createHostResolver(policy.dns));
  const refused = addresses.find((address) => !isPublicAddress(address));
  if (refused !== undefined) throw refusal(host, refused);
  return url;
}

/**
 * A name that does not exist, or has no address, is refused; any other failure (a server that
 * timed out, failed or refused) may pass, so the registration is answered 503 to retry.
 */
async function resolveAll(host: string, resolve: ResolveHost): Promise<string[]> {
  try {
    return await resolve(host);
  } catch (failure) {
    const error = failure as NodeJS.ErrnoException;
    const why = error.code ?? error.message;
    if (NOT_FOUND_DNS_CODES.has(error.code ?? '')) throw new WebhookUrlRefusedError(`${host} does not resolve (${why})`);
    throw new WebhookUrlUnresolvedError(`${host} could not be resolved just now (${why}); try again`);
  }
}
