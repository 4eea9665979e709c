# shellcheck shell=bash
# Sourced by the scripts: the local stack's defaults. Tally's own variables are defined in
# services/tally/src/config.ts; services/tally/src/configSources.unit.spec.ts checks these lines,
# the README's tables and test/support/src/stackConfig.ts against it.

TALLY_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

export TALLY_HOME="${TALLY_HOME:-$TALLY_ROOT/.tally}"
export TALLY_KAFKA_BROKERS="${TALLY_KAFKA_BROKERS:-127.0.0.1:9092}"
export TALLY_KAFKA_CONTROLLER_PORT="${TALLY_KAFKA_CONTROLLER_PORT:-9093}"
# The local broker's SASL listener (SCRAM-SHA-256/512 and PLAIN, no TLS), for trying Tally with
# authentication to Kafka; a local account, not a secret. Not TALLY_KAFKA_SASL_*: those are Tally's.
export TALLY_KAFKA_SASL_PORT="${TALLY_KAFKA_SASL_PORT:-9094}"
export TALLY_KAFKA_TLS_PORT="${TALLY_KAFKA_TLS_PORT:-9095}"
export TALLY_KAFKA_LOCAL_SASL_USER="${TALLY_KAFKA_LOCAL_SASL_USER:-tally}"
export TALLY_KAFKA_LOCAL_SASL_PASSWORD="${TALLY_KAFKA_LOCAL_SASL_PASSWORD:-tally-local-sasl}"
export TALLY_SCHEMA_REGISTRY_URL="${TALLY_SCHEMA_REGISTRY_URL:-http://127.0.0.1:8081/apis/ccompat/v7}"
export TALLY_SCHEMA_REGISTRY_MANAGEMENT_PORT="${TALLY_SCHEMA_REGISTRY_MANAGEMENT_PORT:-9081}"
export TALLY_DATABASE_URL="${TALLY_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/tally}"
export TALLY_TEST_DATABASE_URL="${TALLY_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/tally_test}"
export TALLY_REDIS_URL="${TALLY_REDIS_URL:-redis://127.0.0.1:6379}"
# No EventStoreDB runs in the local stack; its conformance suite runs where this reaches one.
export TALLY_EVENTSTORE_CONNECTION_STRING="${TALLY_EVENTSTORE_CONNECTION_STRING:-esdb://127.0.0.1:2113?tls=false}"
export TALLY_USAGE_TOPIC="${TALLY_USAGE_TOPIC:-usage-events}"
export TALLY_USAGE_TOPIC_PARTITIONS="${TALLY_USAGE_TOPIC_PARTITIONS:-6}"
export TALLY_DLQ_TOPIC="${TALLY_DLQ_TOPIC:-usage-events.dlq}"
export TALLY_DLQ_TOPIC_PARTITIONS="${TALLY_DLQ_TOPIC_PARTITIONS:-3}"
export TALLY_LEDGER_TOPIC="${TALLY_LEDGER_TOPIC:-credit-ledger}"
export TALLY_LEDGER_TOPIC_PARTITIONS="${TALLY_LEDGER_TOPIC_PARTITIONS:-6}"
export TALLY_STACK_TIMEOUT_SECONDS="${TALLY_STACK_TIMEOUT_SECONDS:-180}"
