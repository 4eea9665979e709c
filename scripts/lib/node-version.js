// Stops `npm start` and `npm test` early, with the reason, on a Node.js that cannot run Tally,
// which npm itself only warns about: one older than package.json's engines.node
// (">=major.minor"), or one where require() of ES modules is still behind a flag (21.x and
// 22.0 to 22.11; on by default from 20.19, 22.12 and 23). Later it would fail less clearly:
// ERR_REQUIRE_ESM from a dependency that ships only ES modules (content-disposition 3, which
// @fastify/static loads).
const path = require('node:path');

const parse = (version) => version.replace(/^v/, '').split('.').map(Number);

/** Whether `version` ("v20.19.0" or "20.19.0") is at least `engines` (">=20.19"). */
function satisfies(engines, version) {
  const wanted = /^>=(\d+)\.(\d+)$/.exec(engines.trim());
  if (wanted === null) throw new Error(`engines.node must read ">=major.minor", not "${engines}"`);
  const [major, minor] = parse(version);
  const [wantedMajor, wantedMinor] = [Number(wanted[1]), Number(wanted[2])];
  return major > wantedMajor || (major === wantedMajor && minor >= wantedMinor);
}

/** Whether require() loads ES modules without a flag in `version`: 20.19+, 22.12+, 23 and later. */
function requireLoadsEsm(version) {
  const [major, minor] = parse(version);
  return (major === 20 && minor >= 19) || (major === 22 && minor >= 12) || major >= 23;
}

/** Whether Tally runs on `version`: at least `engines`, and require() loads ES modules there. */
function supports(engines, version) {
  return satisfies(engines, version) && requireLoadsEsm(version);
}

module.exports = { satisfies, requireLoadsEsm, supports };

if (require.main === module) {
  const engines = require(path.join(__dirname, '..', '..', 'package.json')).engines.node;
  if (!supports(engines, process.version)) {
    console.error(
      `Tally needs Node.js 20.19 or later in 20.x, or 22.12 or later (package.json engines.node ${engines}; 21.x and 22.0 to 22.11 load ES modules with require() only behind a flag); this is ${process.version}.`,
    );
    process.exit(1);
  }
  // False where it was turned off (--no-experimental-require-module in NODE_OPTIONS).
  if (process.features.require_module === false) {
    console.error(`Tally needs require() of ES modules, which is turned off in this Node.js ${process.version} (NODE_OPTIONS?).`);
    process.exit(1);
  }
}
