import { isUtf8 } from 'node:buffer';
import { assertUsageEventDepth, InvalidUsageEventError, isUsageTextLength, MAX_USAGE_TEXT, parseUsageEvent, type TallyError, type UsageEvent } from '@tally/domain';
import { CloudEvent, ValidationError } from 'cloudevents';
import type { IHeaders } from 'kafkajs';
import { UndecodableUsageEventError } from './meteringErrors';

/**
 * CloudEvents 1.0 (JSON format, Kafka protocol binding) as usage events, the format other
 * metering systems ingest: `subject` is the customer, `type` the event name, `time` the
 * timestamp, `data` the properties. The official SDK validates the attributes against the spec
 * (required ones present and non-empty, `time` RFC 3339, names lowercase alphanumeric); its Kafka
 * binding is not used because it throws a RangeError on an event without `time` instead of a
 * validation error, and the mapping of `ce_` headers is a few lines.
 */

const BINARY_PREFIX = 'ce_';

/** What a CloudEvent's usage id starts with, and a native one never does (parseNativeUsageEvent). */
const CLOUD_EVENT_ID_PREFIX = 'ce:';

/**
 * The usage id of a CloudEvent. The spec makes `source` + `id` unique, so both are in it; the
 * source's length comes first, so no two (source, id) pairs give the same id however either is
 * spelled ("a:b" + "c" and "a" + "b:c" differ). The `ce:` prefix keeps these ids apart from
 * native ones, which may not start with it.
 */
export function cloudEventUsageId(source: string, id: string): string {
  return `${CLOUD_EVENT_ID_PREFIX}${source.length}:${source}:${id}`;
}

/**
 * A usage event of Tally's own JSON or Avro. Its id may not start with `ce:`: a native id
 * `ce:1:a:b` would be the CloudEvent of source `a` and id `b`, the same markers and ledger ids,
 * and whichever came second would count as metered already, charged never. Refused as invalid
 * (a 400 at the API, a dead letter on the topic), as any other malformed id is.
 */
export function parseNativeUsageEvent(record: unknown): UsageEvent {
  const usage = parseUsageEvent(record);
  if (usage.id.startsWith(CLOUD_EVENT_ID_PREFIX)) {
    throw new InvalidUsageEventError(`id must not start with "${CLOUD_EVENT_ID_PREFIX}": Tally keeps it for the ids it makes of CloudEvents' source and id`);
  }
  return usage;
}

function reasonOf(error: unknown): string {
  if (error instanceof ValidationError && Array.isArray(error.errors) && error.errors.length > 0) {
    return error.errors.map((detail) => (typeof detail === 'string' ? detail : `${detail.instancePath || '/'} ${detail.message ?? ''}`.trim())).join('; ');
  }
  return error instanceof Error ? error.message : String(error);
}

function validated(attributes: Record<string, unknown>): CloudEvent<unknown> {
  if (attributes.specversion !== '1.0') throw new InvalidUsageEventError(`CloudEvent specversion must be "1.0", got ${JSON.stringify(attributes.specversion)}`);
  if ('data_base64' in attributes) throw new InvalidUsageEventError('CloudEvent data_base64 is not usage: send data as a JSON object');
  // The SDK makes up a missing id (a random UUID) and time (now): a redelivered event would then
  // count again. Both, and the rest that usage needs, must come from the producer.
  for (const name of ['id', 'source', 'type'] as const) {
    const value = attributes[name];
    if (typeof value !== 'string' || value.length === 0) throw new InvalidUsageEventError(`not a valid CloudEvent: ${name} must be a non-empty string`);
  }
  if (attributes.subject === undefined) throw new InvalidUsageEventError('CloudEvent subject (the customer id) is missing');
  if (attributes.time === undefined) throw new InvalidUsageEventError('CloudEvent time (when the usage happened) is missing');
  try {
    return new CloudEvent<unknown>(attributes as never, true);
  } catch (error) {
    throw new InvalidUsageEventError(`not a valid CloudEvent: ${reasonOf(error)}`, { cause: error });
  }
}

function toUsage(event: CloudEvent<unknown>): UsageEvent {
  const data = event.data;
  if (data !== undefined && data !== null && (typeof data !== 'object' || Array.isArray(data))) {
    throw new InvalidUsageEventError('CloudEvent data (the properties) must be a JSON object');
  }
  const id = cloudEventUsageId(event.source, event.id);
  if (!isUsageTextLength(id)) throw new InvalidUsageEventError(`CloudEvent source and id are too long together for a usage id (${MAX_USAGE_TEXT} characters)`);
  return parseUsageEvent({ id, customerId: event.subject, event: event.type, timestamp: event.time, properties: data ?? {} });
}

/** Whether a decoded JSON object is a structured-mode CloudEvent rather than Tally's own JSON. */
export function isStructuredCloudEvent(record: unknown): record is Record<string, unknown> {
  return record !== null && typeof record === 'object' && !Array.isArray(record) && 'specversion' in record;
}

/**
 * A usage event from a JSON object: a structured-mode CloudEvent, or Tally's own JSON. What the
 * API and the consumer both read an event with, so both refuse the same events.
 */
export function usageEventFromJson(record: unknown): UsageEvent {
  if (!isStructuredCloudEvent(record)) return parseNativeUsageEvent(record);
  // The whole CloudEvent, extension attributes too: parseUsageEvent sees only its data.
  assertUsageEventDepth(record);
  return toUsage(validated(record));
}

/** Whether a message is a binary-mode CloudEvent: it has a `ce_specversion` header. */
export function isBinaryCloudEvent(headers: IHeaders | undefined): headers is IHeaders {
  return headers?.[`${BINARY_PREFIX}specversion`] !== undefined;
}

/**
 * The attributes of a binary-mode CloudEvent's headers (`ce_*`, and `content-type` as
 * datacontenttype), and the first reason its headers cannot be metered, if any; such a header is
 * left out of the attributes. A value that is not valid UTF-8: read with replacement characters,
 * ids that differ in such a byte would be one id, metered once for all of them. A header given
 * more than once: which value is the attribute's is anybody's guess, and a guessed id or subject
 * would charge the usage as another event, or another customer's.
 */
function readBinaryAttributes(headers: IHeaders): { attributes: Record<string, string>; refusal?: TallyError } {
  const attributes: Record<string, string> = {};
  let refusal: TallyError | undefined;
  const take = (header: string, attribute: string, value: IHeaders[string]) => {
    if (Array.isArray(value) && value.length > 1) {
      refusal ??= new InvalidUsageEventError(`CloudEvent header ${header} is repeated: the attribute must have one value`);
      return;
    }
    const single = Array.isArray(value) ? value[0] : value;
    if (single === undefined) return;
    if (typeof single === 'string') attributes[attribute] = single;
    else if (isUtf8(single)) attributes[attribute] = single.toString('utf8');
    else refusal ??= new UndecodableUsageEventError(`CloudEvent header ${header} is not valid UTF-8`);
  };
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(BINARY_PREFIX)) take(name, name.slice(BINARY_PREFIX.length), value);
  }
  take('content-type', 'datacontenttype', headers['content-type']);
  return refusal === undefined ? { attributes } : { attributes, refusal };
}

/**
 * The CloudEvent attributes of a binary-mode message (`ce_` headers), or undefined when it has
 * none; never throws (what names a dead letter's usage event): a header that is not text is left out.
 */
export function binaryCloudEventAttributes(headers: IHeaders | undefined): Record<string, string> | undefined {
  return isBinaryCloudEvent(headers) ? readBinaryAttributes(headers).attributes : undefined;
}

/** A binary-mode CloudEvent: attributes from the headers, the value is the data (JSON). */
export function usageEventFromBinaryCloudEvent(headers: IHeaders, value: Buffer): UsageEvent {
  const { attributes, refusal } = readBinaryAttributes(headers);
  if (refusal !== undefined) throw refusal;
  const contentType = attributes.datacontenttype;
  if (contentType !== undefined && !/^application\/([\w.+-]+\+)?json(\s*;.*)?$/i.test(contentType)) {
    throw new InvalidUsageEventError(`CloudEvent data of content type ${contentType} is not usage: send application/json`);
  }
  if (!isUtf8(value)) throw new UndecodableUsageEventError('CloudEvent data is not valid UTF-8');
  let data: unknown;
  try {
    data = value.length === 0 ? undefined : (JSON.parse(value.toString('utf8')) as unknown);
  } catch (error) {
    throw new InvalidUsageEventError(`CloudEvent data is not JSON: ${reasonOf(error)}`, { cause: error });
  }
  return toUsage(validated({ ...attributes, ...(data === undefined ? {} : { data }) }));
}
