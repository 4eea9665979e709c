// Stops `npm start` and `npm test` early, with the reason, on a Node.js older than package.json's
// engines.node (">=major.minor"), which npm itself only warns about. Later it would fail less
// clearly: ERR_REQUIRE_ESM from a dependency that ships only ES modules.
const path = require('node:path');

/** Whether `version` ("v20.19.0" or "20.19.0") is at least `engines` (">=20.19"). */
function satisfies(engines, version) {
  const wanted = /^>=(\d+)\.(\d+)$/.exec(engines.trim());
  if (wanted === null) throw new Error(`engines.node must read ">=major.minor", not "${engines}"`);
  const [major, minor] = version.replace(/^v/, '').split('.').map(Number);
  const [wantedMajor, wantedMinor] = [Number(wanted[1]), Number(wanted[2])];
  return major > wantedMajor || (major === wantedMajor && minor >= wantedMinor);
}

module.exports = { satisfies };

if (require.main === module) {
  const engines = require(path.join(__dirname, '..', '..', 'package.json')).engines.node;
  if (!satisfies(engines, process.version)) {
    console.error(`Tally needs Node.js ${engines.replace('>=', '')} or later (package.json engines.node); this is ${process.version}.`);
    process.exit(1);
  }
}
