#!/usr/bin/env node
// The runnable example of docs/ledger.md: prints an invoice-to-be for every purchase of credits
// published on the credit-ledger topic. Build first (`npm run build`); the code is in
// services/ledger-relay/src/exampleBillingConsumer.ts.
require('../services/ledger-relay/dist/exampleBillingConsumerCli.js');
