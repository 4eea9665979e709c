/** scripts/lib/node-version.js, which ensure-deps.sh runs first: the Node.js package.json asks for. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { satisfies, supports } = require('../../scripts/lib/node-version.js') as {
  satisfies: (engines: string, version: string) => boolean;
  supports: (engines: string, version: string) => boolean;
};

describe('the Node.js version check', () => {
  it.each([
    ['v20.19.0', true],
    ['v20.20.2', true],
    ['20.19.5', true],
    // require() of ES modules (content-disposition 3, which @fastify/static loads) is only behind a flag in these:
    ['v21.0.0', false],
    ['v21.7.3', false],
    ['v22.0.0', false],
    ['v22.11.0', false],
    ['v22.12.0', true],
    ['v22.12.1', true],
    ['v23.0.0', true],
    ['v24.11.1', true],
    ['v20.18.3', false],
    ['v20.9.0', false],
    ['v18.20.4', false],
  ])('against >=20.19, takes %s: %s', (version, expected) => {
    expect(supports('>=20.19', version)).toBe(expected);
  });

  it("reads engines.node as a floor, below which nothing passes", () => {
    expect(satisfies('>=22.12', 'v22.11.9')).toBe(false);
    expect(supports('>=22.12', 'v22.12.0')).toBe(true);
    expect(supports('>=23.1', 'v23.0.0')).toBe(false);
  });

  it('refuses an engines field it cannot read, rather than letting any version through', () => {
    expect(() => satisfies('^20.19.0', 'v20.19.0')).toThrow(/>=major\.minor/);
  });

  it("reads package.json's own engines.node, and this very Node satisfies it", () => {
    const engines = (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    expect(supports(engines, process.version)).toBe(true);
  });
});
