/** scripts/lib/node-version.js, which ensure-deps.sh runs first: the Node.js package.json asks for. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { satisfies } = require('../../scripts/lib/node-version.js') as { satisfies: (engines: string, version: string) => boolean };

describe('the Node.js version check', () => {
  it.each([
    ['v20.19.0', true],
    ['v20.20.2', true],
    ['v21.0.0', true],
    ['v22.12.1', true],
    ['20.19.5', true],
    ['v20.18.3', false],
    ['v20.9.0', false],
    ['v18.20.4', false],
  ])('against >=20.19, takes %s: %s', (version, expected) => {
    expect(satisfies('>=20.19', version)).toBe(expected);
  });

  it('refuses an engines field it cannot read, rather than letting any version through', () => {
    expect(() => satisfies('^20.19.0', 'v20.19.0')).toThrow(/>=major\.minor/);
  });

  it("reads package.json's own engines.node, and this very Node satisfies it", () => {
    const engines = (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    expect(satisfies(engines, process.version)).toBe(true);
  });
});
