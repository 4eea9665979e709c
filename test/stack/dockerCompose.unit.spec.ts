/**
 * docker-compose.yml cannot run on these machines, so this test keeps it honest: every service
 * Tally needs is there, on the same host ports and with the same topics as the local stack.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { parse } from 'yaml';
import { readStackConfig } from '@tally/test-support';

interface ComposeService {
  image?: string;
  ports?: string[];
  environment?: Record<string, string>;
  profiles?: string[];
  depends_on?: Record<string, { condition: string }>;
  volumes?: string[];
  command?: string[];
}

// `merge` resolves `<<:` keys, which Docker Compose supports and the YAML 1.2 core schema does not.
const compose = parse(readFileSync(join(__dirname, '..', '..', 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, ComposeService>;
};
const defaults = readStackConfig({});
const ROOT = join(__dirname, '..', '..');
const yamlAt = (...parts: string[]) => parse(readFileSync(join(ROOT, ...parts), 'utf8')) as unknown;

/** A bind mount of this checkout: where it is mounted, and the checkout's path it shows. */
function bindMounts(name: string): { readonly source: string; readonly target: string }[] {
  return (service(name).volumes ?? [])
    .filter((volume) => volume.startsWith('./'))
    .map((volume) => {
      const [source, target] = volume.split(':');
      return { source: source!.slice(2), target: target! };
    });
}

/** The checkout's file a path inside a container shows, through that service's bind mounts. */
function hostFileOf(name: string, containerPath: string): string | undefined {
  const mount = bindMounts(name).find(({ target }) => containerPath === target || containerPath.startsWith(`${target}/`));
  return mount === undefined ? undefined : join(ROOT, mount.source, posix.relative(mount.target, containerPath));
}

function service(name: string): ComposeService {
  const found = compose.services[name];
  if (!found) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
}

function hostPort(address: string): string {
  return address.includes('://') ? new URL(address).port : address.slice(address.lastIndexOf(':') + 1);
}

const topicEnvironment = {
  TALLY_USAGE_TOPIC: defaults.usageTopic,
  TALLY_USAGE_TOPIC_PARTITIONS: String(defaults.usageTopicPartitions),
  TALLY_DLQ_TOPIC: defaults.dlqTopic,
  TALLY_DLQ_TOPIC_PARTITIONS: String(defaults.dlqTopicPartitions),
  TALLY_LEDGER_TOPIC: defaults.ledgerTopic,
  TALLY_LEDGER_TOPIC_PARTITIONS: String(defaults.ledgerTopicPartitions),
};

describe('docker-compose.yml', () => {
  it.each(['kafka', 'kafka-init', 'schema-registry', 'schema-registry-init', 'postgres', 'redis', 'eventstoredb', 'tally', 'tally-eventstoredb'])('has the %s service', (name) => {
    expect(Object.keys(compose.services)).toContain(name);
  });

  it.each([
    ['kafka', hostPort(defaults.kafkaBrokers[0] ?? '')],
    ['schema-registry', hostPort(defaults.schemaRegistryUrl)],
    ['postgres', hostPort(defaults.databaseUrl)],
    ['redis', hostPort(defaults.redisUrl)],
  ])('publishes %s on 127.0.0.1:%s, as the local stack listens', (name, port) => {
    expect(service(name).ports?.some((mapping) => mapping.startsWith(`127.0.0.1:${port}:`))).toBe(true);
  });

  it('advertises Kafka to the host at the local stack address', () => {
    expect(service('kafka').environment?.KAFKA_ADVERTISED_LISTENERS).toContain(`PLAINTEXT://${defaults.kafkaBrokers[0]}`);
  });

  it('runs Kafka as one KRaft node without topic auto-creation', () => {
    expect(service('kafka').environment).toMatchObject({
      KAFKA_PROCESS_ROLES: 'broker,controller',
      KAFKA_AUTO_CREATE_TOPICS_ENABLE: 'false',
      KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
    });
  });

  it('creates and uses the same topics as the local stack', () => {
    expect(service('kafka-init').environment).toMatchObject(topicEnvironment);
    expect(service('tally').environment).toMatchObject(topicEnvironment);
  });

  it('sets the schema registry up as the client library requires', () => {
    expect(service('schema-registry').environment).toMatchObject({
      APICURIO_RULES_GLOBAL_COMPATIBILITY: 'BACKWARD',
      APICURIO_CCOMPAT_USE_CANONICAL_HASH: 'true',
    });
  });

  it("sets the usage subject's rule as the local stack does, before Tally starts", () => {
    // The rule scripts/lib/schema-registry.sh PUTs on the usage subject: compose must set the same.
    const script = readFileSync(join(ROOT, 'scripts', 'lib', 'schema-registry.sh'), 'utf8');
    const localRule = /--data '(\{"compatibility":"[A-Z_]+"\})' "\$TALLY_SCHEMA_REGISTRY_URL\/config\/\$TALLY_USAGE_TOPIC-value"/.exec(script)?.[1];
    expect(localRule).toBe('{"compatibility":"FULL_TRANSITIVE"}');
    const init = service('schema-registry-init');
    expect(init.command?.join('\n')).toContain(`--data '${localRule}' "$$TALLY_SCHEMA_REGISTRY_URL/config/$$TALLY_USAGE_TOPIC-value"`);
    expect(init.environment).toMatchObject({ TALLY_USAGE_TOPIC: defaults.usageTopic, TALLY_SCHEMA_REGISTRY_URL: service('tally').environment?.TALLY_SCHEMA_REGISTRY_URL });
    for (const name of ['tally', 'tally-eventstoredb']) {
      expect([name, service(name).depends_on?.['schema-registry-init']]).toEqual([name, { condition: 'service_completed_successfully' }]);
    }
  });

  it('runs Tally with every role, as `npm start` does (TALLY_ROLES unset or all of them)', () => {
    // services/tally/src/config.ts's roles, read from its text: the deployable exports no values for tests.
    const declared = /export const ROLES = \[([^\]]*)\] as const/.exec(readFileSync(join(ROOT, 'services', 'tally', 'src', 'config.ts'), 'utf8'));
    const allRoles = [...(declared?.[1] ?? '').matchAll(/'(\w+)'/g)].map((match) => match[1]!);
    expect(allRoles).toEqual(expect.arrayContaining(['consumer', 'relay', 'scheduler', 'webhooks']));
    for (const name of ['tally', 'tally-eventstoredb']) {
      const roles = service(name).environment?.TALLY_ROLES?.split(',').map((role) => role.trim()) ?? allRoles;
      expect([name, [...roles].sort()]).toEqual([name, [...allRoles].sort()]);
    }
  });

  it("points Tally at the compose network's services", () => {
    expect(service('tally').environment).toMatchObject({
      TALLY_KAFKA_BROKERS: 'kafka:29092',
      TALLY_SCHEMA_REGISTRY_URL: 'http://schema-registry:8080/apis/ccompat/v7',
      TALLY_DATABASE_URL: 'postgres://postgres@postgres:5432/tally',
      TALLY_REDIS_URL: 'redis://redis:6379',
    });
  });

  describe('the observability profile', () => {
    it.each([
      ['prometheus', '9090'],
      ['grafana', '3000'],
    ])('runs %s only with the profile, published on 127.0.0.1:%s', (name, port) => {
      expect(service(name).profiles).toEqual(['observability']);
      expect(service(name).ports).toEqual([`127.0.0.1:${port}:${port}`]);
    });

    it("gives Prometheus this checkout's configuration and alerting rules, scraping the compose file's Tally", () => {
      const configFlag = service('prometheus').command?.find((argument) => argument.startsWith('--config.file='));
      const config = hostFileOf('prometheus', configFlag?.slice('--config.file='.length) ?? '');
      expect(config).toBe(join(ROOT, 'infra', 'prometheus', 'prometheus.yml'));
      const prometheus = yamlAt('infra', 'prometheus', 'prometheus.yml') as {
        rule_files: string[];
        scrape_configs: { job_name: string; metrics_path: string; dns_sd_configs: { names: string[]; port: number }[] }[];
      };
      for (const rules of prometheus.rule_files) expect(existsSync(join(ROOT, 'infra', 'prometheus', rules))).toBe(true);
      const [tally] = prometheus.scrape_configs;
      expect(tally?.metrics_path).toBe('/metrics');
      // The Tally services by name, on the port they listen on inside the compose network.
      const names = tally?.dns_sd_configs.flatMap((config) => config.names) ?? [];
      expect(names.sort()).toEqual(['tally', 'tally-eventstoredb']);
      const containerPort = service('tally').ports?.[0]?.split(':').at(-1);
      expect(tally?.dns_sd_configs.map((config) => String(config.port))).toEqual([containerPort]);
      expect(service('tally').environment?.TALLY_API_HOST).toBe('0.0.0.0');
    });

    it("provisions Grafana with the compose file's Prometheus and Tally's dashboard, opened first", () => {
      const datasources = yamlAt('infra', 'grafana', 'provisioning', 'datasources', 'prometheus.yml') as { datasources: { type: string; url: string }[] };
      expect(datasources.datasources).toEqual([expect.objectContaining({ type: 'prometheus', url: 'http://prometheus:9090' })]);
      const provisioning = hostFileOf('grafana', '/etc/grafana/provisioning');
      expect(provisioning).toBe(join(ROOT, 'infra', 'grafana', 'provisioning'));
      const providers = yamlAt('infra', 'grafana', 'provisioning', 'dashboards', 'tally.yml') as { providers: { options: { path: string } }[] };
      const dashboards = providers.providers.map((provider) => hostFileOf('grafana', provider.options.path));
      expect(dashboards).toEqual([join(ROOT, 'infra', 'grafana', 'dashboards')]);
      const home = hostFileOf('grafana', service('grafana').environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH ?? '');
      expect(home).toBe(join(ROOT, 'infra', 'grafana', 'dashboards', 'tally-overview.json'));
      expect(existsSync(home!)).toBe(true);
    });
  });

  describe('the eventstoredb profile', () => {
    it('runs EventStoreDB as one insecure node, published where the default connection string looks', () => {
      expect(service('eventstoredb').profiles).toEqual(['eventstoredb']);
      expect(service('eventstoredb').environment).toMatchObject({ EVENTSTORE_CLUSTER_SIZE: '1', EVENTSTORE_INSECURE: 'true' });
      expect(service('eventstoredb').ports?.some((mapping) => mapping.startsWith(`127.0.0.1:${hostPort(defaults.eventStoreDbConnectionString.split('?')[0]!)}:2113`))).toBe(true);
    });

    it('runs Tally on it, configured as the default tally service otherwise', () => {
      const { TALLY_EVENT_STORE, TALLY_EVENTSTORE_CONNECTION_STRING, ...rest } = service('tally-eventstoredb').environment ?? {};
      expect(service('tally-eventstoredb').profiles).toEqual(['eventstoredb']);
      expect({ TALLY_EVENT_STORE, TALLY_EVENTSTORE_CONNECTION_STRING }).toEqual({
        TALLY_EVENT_STORE: 'eventstoredb',
        TALLY_EVENTSTORE_CONNECTION_STRING: 'esdb://eventstoredb:2113?tls=false',
      });
      expect(rest).toEqual(service('tally').environment);
      expect(service('tally-eventstoredb').depends_on?.eventstoredb).toEqual({ condition: 'service_healthy' });
      // Without the profile nothing may wait for EventStoreDB (compose refuses a dependency on an inactive service).
      expect(service('tally').profiles).toBeUndefined();
      expect(service('tally').depends_on?.eventstoredb).toBeUndefined();
      expect(service('tally').environment?.TALLY_EVENT_STORE).toBeUndefined();
    });
  });
});
