export * from './billingPeriod';
