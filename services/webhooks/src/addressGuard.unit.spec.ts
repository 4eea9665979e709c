import dns from 'node:dns';
import { assertDeliverableUrl, isPublicAddress } from './addressGuard';
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

  /** dns.lookup failing with `code`, as getaddrinfo reports it. */
  function lookupFailing(code: string): void {
    jest.spyOn(dns, 'lookup').mockImplementation(((_host: string, _options: unknown, callback: (error: NodeJS.ErrnoException) => void) => {
      callback(Object.assign(new Error(`getaddrinfo ${code} hooks.example.com`), { code }));
    }) as unknown as typeof dns.lookup);
  }

  it('answers a temporary failure (EAI_AGAIN) as retriable, not as a refused URL', async () => {
    lookupFailing('EAI_AGAIN');
    const unresolved = assertDeliverableUrl('https://hooks.example.com/x', strict);
    await expect(unresolved).rejects.toBeInstanceOf(WebhookUrlUnresolvedError);
    await expect(unresolved).rejects.toMatchObject({ retriable: true, message: expect.stringMatching(/EAI_AGAIN/) });
  });

  it.each(['ENOTFOUND', 'EAI_NONAME', 'EAI_NODATA'])('refuses a name that does not exist (%s)', async (code) => {
    lookupFailing(code);
    await expect(assertDeliverableUrl('https://hooks.example.com/x', strict)).rejects.toBeInstanceOf(WebhookUrlRefusedError);
  });

  // Only "no such name" says the URL is bad: a resolver that failed (EAI_FAIL), a system error
  // (EAI_SYSTEM) or anything else may pass, and the client is told to try again.
  it.each(['EAI_FAIL', 'EAI_SYSTEM', 'EAI_MEMORY', 'ESERVFAIL', 'EWHATEVER'])('answers any other lookup error (%s) as retriable', async (code) => {
    lookupFailing(code);
    await expect(assertDeliverableUrl('https://hooks.example.com/x', strict)).rejects.toBeInstanceOf(WebhookUrlUnresolvedError);
  });
});
