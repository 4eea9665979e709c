export * from './createTestKafka';
export * from './createTestRegistry';
export * from './createTestTopic';
export * from './stackConfig';
export * from './uniqueName';
export * from './waitFor';
export * from './postgres';
export * from './tallyProcess';
