import dns, { type LookupAddress } from 'node:dns';
import { assertDeliverableUrl, isPublicAddress, type AddressPolicy } from './addressGuard';
import { WebhookUrlRefusedError, WebhookUrlUnresolvedError } from './webhookErrors';

const strict = { allowPrivateNetworks: false };

describe('isPublicAddress', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.10.0.3', 'loopback'],
    ['::1', 'IPv6 loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'the cloud metadata service (link-local)'],
    ['fe80::1', 'IPv6 link-local'],
    ['fd00:ec2::254', 'IPv6 unique local (a metadata service)'],
    ['::ffff:127.0.0.1', 'IPv4-mapped loopback'],
    ['::ffff:10.0.0.1', 'IPv4-mapped private'],
    ['100.100.100.200', 'carrier-grade NAT (a metadata service)'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'IPv6 unspecified'],
    ['224.0.0.1', 'multicast'],
    ['2002:7f00:1::', '6to4 of 127.0.0.1'],
    ['64:ff9b::a00:1', 'NAT64 of 10.0.0.1'],
    ['::7f00:1', 'IPv4-compatible 127.0.0.1 (the URL parser writes [::127.0.0.1] so)'],
    ['::a00:1', 'IPv4-compatible 10.0.0.1'],
    ['::808:808', 'IPv4-compatible 8.8.8.8 (the deprecated ::/96: none is routed as public)'],
    ['::2', 'in ::/96'],
    ['not-an-address', 'not an address'],
  ])('refuses %s (%s)', (address) => {
    expect(isPublicAddress(address)).toBe(false);
  });

  it.each(['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])('allows the public address %s', (address) => {
    expect(isPublicAddress(address)).toBe(true);
  });
});

describe('assertDeliverableUrl', () => {
  it.each([
    ['http://127.0.0.1:8080/hook', /non-public/],
    ['http://[::1]/hook', /non-public/],
    ['http://169.254.169.254/latest/meta-data', /non-public/],
    ['http://[::127.0.0.1]/x', /non-public/],
    ['http://[::a9fe:a9fe]/latest/meta-data', /non-public/],
    ['http://localhost:9000/hook', /non-public/],
    ['ftp://example.com/hook', /http or https/],
    ['https://user:pass@example.com/hook', /credentials/],
    ['/relative', /absolute URL/],
  ])('refuses %s', async (url, message) => {
    const refused = assertDeliverableUrl(url, strict);
    await expect(refused).rejects.toBeInstanceOf(WebhookUrlRefusedError);
    await expect(refused).rejects.toThrow(message);
  });

  it('names the setting that allows private networks', async () => {
    await expect(assertDeliverableUrl('http://10.0.0.5/hook', strict)).rejects.toThrow('TALLY_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=true');
  });

  it('accepts a public literal, and any address when private networks are allowed', async () => {
    await expect(assertDeliverableUrl('https://8.8.8.8/hook', strict)).resolves.toBeInstanceOf(URL);
    await expect(assertDeliverableUrl('http://127.0.0.1:8080/hook', { allowPrivateNetworks: true })).resolves.toBeInstanceOf(URL);
  });
});

describe('assertDeliverableUrl when DNS fails', () => {
  afterEach(() => jest.restoreAllMocks());

  /** The system resolver (getaddrinfo) as the test has it answer, and the names it was asked. */
  function systemResolver(answer: (host: string) => LookupAddress[] | string): { policy: AddressPolicy; asked: string[] } {
    const asked: string[] = [];
    const lookup = async (host: string) => {
      asked.push(host);
      const found = answer(host);
      if (typeof found === 'string') throw Object.assign(new Error(`getaddrinfo ${found} ${host}`), { code: found });
      return found;
    };
    return { policy: { ...strict, dns: { lookup } }, asked };
  }

  /** The resolver's A and AAAA queries failing with these codes, as c-ares reports them. */
  function resolvingFails(v4: string, v6 = v4): void {
    const failing = (code: string) => () => Promise.reject(Object.assign(new Error(`query ${code} hooks.example.com`), { code }));
    jest.spyOn(dns.promises.Resolver.prototype, 'resolve4').mockImplementation(failing(v4));
    jest.spyOn(dns.promises.Resolver.prototype, 'resolve6').mockImplementation(failing(v6));
  }

  it('answers a timeout (ETIMEOUT) as retriable, not as a refused URL, without asking the system resolver', async () => {
    resolvingFails('ETIMEOUT');
    const { policy, asked } = systemResolver(() => [{ address: '8.8.8.8', family: 4 }]);
    const unresolved = assertDeliverableUrl('https://hooks.example.com/x', policy);
    await expect(unresolved).rejects.toBeInstanceOf(WebhookUrlUnresolvedError);
    await expect(unresolved).rejects.toMatchObject({ retriable: true, message: expect.stringMatching(/ETIMEOUT/) });
    expect(asked).toEqual([]);
  });

  it.each([
    ['ENOTFOUND', 'ENOTFOUND'],
    ['ENODATA', 'ENODATA'],
    ['ENOTFOUND', 'ENODATA'],
  ])('refuses a name that neither DNS (A %s, AAAA %s) nor the system resolver knows', async (v4, v6) => {
    resolvingFails(v4, v6);
    const { policy, asked } = systemResolver(() => 'ENOTFOUND');
    await expect(assertDeliverableUrl('https://hooks.example.com/x', policy)).rejects.toBeInstanceOf(WebhookUrlRefusedError);
    expect(asked).toEqual(['hooks.example.com']);
  });

  // c-ares sends the name as given: a search-list name or one in /etc/hosts is the system resolver's.
  it('takes the addresses of a name DNS says does not exist from the system resolver, and checks them the same', async () => {
    resolvingFails('ENOTFOUND', 'ENODATA');
    const known = systemResolver((host) => (host === 'receiver.ns' ? [{ address: '8.8.8.8', family: 4 }] : [{ address: 'fd00::1', family: 6 }]));
    await expect(assertDeliverableUrl('https://receiver.ns/x', known.policy)).resolves.toBeInstanceOf(URL);
    await expect(assertDeliverableUrl('https://inward.ns/x', known.policy)).rejects.toThrow(/fd00::1.*non-public/);
  });

  it('answers a system resolver that failed for the moment (EAI_AGAIN) as retriable', async () => {
    resolvingFails('ENOTFOUND');
    const { policy } = systemResolver(() => 'EAI_AGAIN');
    await expect(assertDeliverableUrl('https://hooks.example.com/x', policy)).rejects.toBeInstanceOf(WebhookUrlUnresolvedError);
  });

  // Only "no such name" says the URL is bad: a server that failed (ESERVFAIL), refused or
  // anything else may pass, and the client is told to try again; so may a name with no IPv4
  // address whose IPv6 query failed.
  it.each([
    ['ESERVFAIL', 'ESERVFAIL'],
    ['EREFUSED', 'EREFUSED'],
    ['ECONNREFUSED', 'ECONNREFUSED'],
    ['EWHATEVER', 'EWHATEVER'],
    ['ENODATA', 'ETIMEOUT'],
  ])('answers any other failure (A %s, AAAA %s) as retriable, without asking the system resolver', async (v4, v6) => {
    resolvingFails(v4, v6);
    const { policy, asked } = systemResolver(() => [{ address: '8.8.8.8', family: 4 }]);
    await expect(assertDeliverableUrl('https://hooks.example.com/x', policy)).rejects.toBeInstanceOf(WebhookUrlUnresolvedError);
    expect(asked).toEqual([]);
  });

  it('checks every address of either family: one private address refuses the URL', async () => {
    jest.spyOn(dns.promises.Resolver.prototype, 'resolve4').mockResolvedValue(['8.8.8.8']);
    jest.spyOn(dns.promises.Resolver.prototype, 'resolve6').mockResolvedValue(['fd00::1']);
    await expect(assertDeliverableUrl('https://hooks.example.com/x', strict)).rejects.toThrow(/fd00::1/);
  });

  it('answers localhost without DNS or the system resolver: loopback, refused', async () => {
    resolvingFails('ETIMEOUT');
    await expect(assertDeliverableUrl('http://api.localhost./hook', strict)).rejects.toThrow(/127\.0\.0\.1.*non-public/);
  });
});
