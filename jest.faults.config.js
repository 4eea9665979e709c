// The fault-injection suite (`npm run test:faults`): the same transform and package mapping as
// jest.config.js, but only *.faults.spec.ts (the scenarios in test/faults, and a package's own
// fault tests beside its code), which the main run never picks up.
// Its scenarios stop and start shared services, so they run alone and in band.
const { projects } = require('./jest.config.js');

const common = { ...projects[0] };
delete common.displayName;
delete common.testMatch;

module.exports = {
  ...common,
  displayName: 'faults',
  testMatch: ['<rootDir>/test/faults/**/*.faults.spec.ts', '<rootDir>/services/**/src/**/*.faults.spec.ts'],
  // A scenario waits on real recoveries (a consumer group's session timeout, a JVM restart)
  // with its own deadlines; this bound only catches a hung run.
  testTimeout: 900_000,
};
