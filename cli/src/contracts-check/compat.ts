import type { Catalog, StreamSpec } from "@jetkit/contracts";
import { fileOptionPath, lineAt, messageOptionPath } from "./source.js";

/** A change between two catalogs that buf cannot see but that breaks publishers or consumers. */
export interface CatalogBreak {
  /** The proto file (relative to the contracts module) where the change shows. */
  readonly file: string;
  readonly rule:
    | "EVENT_SUBJECT_REMOVED"
    | "EVENT_SUBJECT_RENAMED"
    | "EVENT_TYPE_CHANGED"
    | "EVENT_STREAM_MOVED"
    | "STREAM_REMOVED"
    | "EVENT_PARTITION_KEY_CHANGED"
    | "FIELD_RULE_TIGHTENED"
    | "FIELD_RULE_ADDED"
    | "FIELD_REQUIRED_ADDED"
    | "MESSAGE_RULE_ADDED"
    | "STREAM_RETENTION_CHANGED"
    | "STREAM_STORAGE_CHANGED"
    | "STREAM_DISCARD_CHANGED"
    | "STREAM_LIMIT_SHRUNK"
    | "STREAM_REPLICAS_LOWERED"
    | "STREAM_DUPLICATE_WINDOW_SHORT";
  readonly message: string;
  readonly fix: string;
  /** The 1-based line of the change in the current file, when the image's source info gives it. */
  readonly line?: number;
  /** Text whose first occurrence in the current file marks the change (for a line number). */
  readonly anchor?: string;
}

/** Field number of the `(jetkit.v1.event)` message option and of its `partition_key`. */
const EVENT_OPTION = 50602;
const EVENT_PARTITION_KEY = 2;

/**
 * The catalog's own compatibility rules: a subject, once published, keeps its message type and
 * its stream forever, and a stream is never removed by a contract change. Consumers subscribe by
 * subject and decode by type, and stored events stay in their stream.
 */
export function catalogBreaks(before: Catalog, after: Catalog): CatalogBreak[] {
  const breaks: CatalogBreak[] = [];
  for (const old of before.events) {
    const now = after.findBySubject(old.subject);
    if (!now) {
      const moved = after.findByType(old.type);
      if (moved) {
        breaks.push({
          file: moved.file,
          rule: "EVENT_SUBJECT_RENAMED",
          anchor: `"${moved.subject}"`,
          message: `event ${old.type} moved from subject "${old.subject}" to "${moved.subject}"; consumers subscribed to "${old.subject}" would stop receiving it.`,
          fix: `keep subject: "${old.subject}" on ${old.type}; to publish on "${moved.subject}" add a new event message bound to it and publish both while consumers migrate.`,
        });
      } else {
        breaks.push({
          file: old.file,
          rule: "EVENT_SUBJECT_REMOVED",
          anchor: `message ${old.schema.name} {`,
          message: `subject "${old.subject}" (${old.type}) is no longer bound to any event.`,
          fix: `restore option (jetkit.v1.event) = { subject: "${old.subject}" } on ${old.type}; to retire the event, keep it and mark the message \`option deprecated = true;\`.`,
        });
      }
      continue;
    }
    if (now.type !== old.type) {
      breaks.push({
        file: now.file,
        rule: "EVENT_TYPE_CHANGED",
        anchor: `"${old.subject}"`,
        message: `subject "${old.subject}" now carries ${now.type} instead of ${old.type}; stored and in-flight events would no longer decode.`,
        fix: `bind "${old.subject}" back to ${old.type}; a new message type needs a new subject.`,
      });
    }
    if (old.partitionKey && now.type === old.type && now.partitionKey !== old.partitionKey) {
      const line = lineAt(now.schema.file, messageOptionPath(now.schema, EVENT_OPTION, EVENT_PARTITION_KEY));
      breaks.push({
        file: now.file,
        rule: "EVENT_PARTITION_KEY_CHANGED",
        ...(line === undefined ? {} : { line }),
        message: now.partitionKey
          ? `event ${old.type} is now ordered by "${now.partitionKey}" instead of "${old.partitionKey}"; consumers were promised per-${old.partitionKey} order, and a partitioned group would send events of one ${old.partitionKey} to different members.`
          : `event ${old.type} no longer declares partition_key "${old.partitionKey}"; consumers were promised per-${old.partitionKey} order.`,
        fix: `keep partition_key: "${old.partitionKey}" on ${old.type}; to order by another field, add a new event type (new subject) with that key and publish both while consumers migrate.`,
      });
    }
    const oldStream = before.streamFor(old.subject)?.name;
    const newStream = after.streamFor(old.subject)?.name;
    if (oldStream && newStream && oldStream !== newStream) {
      breaks.push({
        file: now.file,
        rule: "EVENT_STREAM_MOVED",
        anchor: `"${old.subject}"`,
        message: `subject "${old.subject}" moved from stream ${oldStream} to ${newStream}; its history would be split and consumers of ${oldStream} would miss new events.`,
        fix: `keep "${old.subject}" inside stream ${oldStream}'s subjects; publish new events on a new subject in ${newStream} instead.`,
      });
    }
  }
  for (const old of before.streams) {
    if (after.stream(old.name)) continue;
    breaks.push({
      file: old.file,
      rule: "STREAM_REMOVED",
      anchor: "option (jetkit.v1.stream)",
      message: `stream ${old.name} (${old.subjects.join(", ")}) is no longer declared; it holds the history of its events.`,
      fix: `restore option (jetkit.v1.stream) = { name: "${old.name}" ... } in ${old.file}; retire a stream by hand after its consumers have moved.`,
    });
  }
  for (const old of before.streams) {
    const now = after.stream(old.name);
    if (now) breaks.push(...streamBreaks(old, now, after));
  }
  return breaks;
}

/** Field numbers of `jetkit.v1.StreamOptions`, for the line of each option in the file. */
const STREAM_OPTION = 50601;
const STREAM_FIELD = {
  retention: 3,
  storage: 4,
  replicas: 5,
  maxAgeMs: 6,
  duplicateWindowMs: 7,
  maxBytes: 8,
  maxMsgSize: 9,
  discard: 10,
} as const;

/** What streams as code gives a stream that declares no replicas on a cluster of 3 or more. */
const DEFAULT_CLUSTER_REPLICAS = 3;

function streamLine(catalog: Catalog, spec: StreamSpec, field: keyof typeof STREAM_FIELD) {
  const file = catalog.registry.getFile(spec.file);
  const line = file ? lineAt(file, fileOptionPath(STREAM_OPTION, STREAM_FIELD[field])) : undefined;
  return line === undefined ? {} : { line };
}

const LIMITS = [
  {
    key: "maxAgeMs",
    option: "max_age",
    unit: "ms",
    loses: "events older than the new age are deleted at once",
  },
  {
    key: "maxBytes",
    option: "max_bytes",
    unit: "bytes",
    loses:
      "the oldest events beyond the new size are deleted (discard old) or every publish is refused once it is full (discard new)",
  },
  {
    key: "maxMsgSize",
    option: "max_msg_size",
    unit: "bytes",
    loses:
      "events that were accepted before are refused from now on (producers' retries, replays, the outbox)",
  },
] as const;

/**
 * Changes to a stream that would lose or break its stored history: retention, storage or discard
 * policy changed, a limit shrunk (0 = unlimited), fewer replicas. `jetkit streams apply` would
 * have to delete and recreate the stream, or the server would drop stored events.
 */
export function streamBreaks(old: StreamSpec, now: StreamSpec, after: Catalog): CatalogBreak[] {
  const breaks: CatalogBreak[] = [];
  const policies = [
    {
      key: "retention",
      rule: "STREAM_RETENTION_CHANGED",
      why: "the server deletes events under the new policy (interest: once every consumer acked; workqueue: once one did), or refuses the update, and consumers relying on replay lose history",
    },
    {
      key: "storage",
      rule: "STREAM_STORAGE_CHANGED",
      why: "JetStream cannot change a stream's storage: the stream would have to be deleted and recreated, losing its events",
    },
    {
      key: "discard",
      rule: "STREAM_DISCARD_CHANGED",
      why: "at a limit the stream then deletes the oldest events (old) or refuses new publishes (new): stored history or producers break",
    },
  ] as const;
  for (const p of policies) {
    if (old[p.key] === now[p.key]) continue;
    breaks.push({
      file: now.file,
      rule: p.rule,
      ...streamLine(after, now, p.key),
      message: `stream ${now.name}: ${p.key} changed from ${old[p.key]} to ${now[p.key]}; ${p.why}.`,
      fix: `keep ${p.key}: ${old[p.key]} on stream ${now.name}; for another ${p.key} declare a new stream (new name and subjects) and move new events there, or migrate by hand and accept with --allow ${p.rule} --reason "...".`,
    });
  }
  for (const l of LIMITS) {
    const was = old[l.key];
    const is = now[l.key];
    if (is === 0 || (was !== 0 && is >= was)) continue;
    const show = (n: number) => (n === 0 ? "unlimited" : `${n} ${l.unit}`);
    breaks.push({
      file: now.file,
      rule: "STREAM_LIMIT_SHRUNK",
      ...streamLine(after, now, l.key),
      message: `stream ${now.name}: ${l.option} shrunk from ${show(was)} to ${show(is)}; ${l.loses}.`,
      fix: `keep ${l.option} at ${show(was)} (or raise it); if losing those events is intended, accept with --allow STREAM_LIMIT_SHRUNK --reason "...".`,
    });
  }
  const replicas = (s: StreamSpec) => s.replicas ?? DEFAULT_CLUSTER_REPLICAS;
  if (replicas(now) < replicas(old)) {
    const declared = (s: StreamSpec) =>
      s.replicas === undefined
        ? `unset (${DEFAULT_CLUSTER_REPLICAS} on a cluster of 3 or more)`
        : String(s.replicas);
    breaks.push({
      file: now.file,
      rule: "STREAM_REPLICAS_LOWERED",
      ...streamLine(after, now, "replicas"),
      message: `stream ${now.name}: replicas lowered from ${declared(old)} to ${declared(now)}; ${replicas(now) < DEFAULT_CLUSTER_REPLICAS ? "with fewer than 3 copies the stream no longer survives the loss of a node with its history intact" : "fewer copies survive fewer node losses"}.`,
      fix: `${old.replicas === undefined ? "leave replicas unset" : `keep replicas: ${old.replicas}`} on stream ${now.name} (or raise it); for a single-server dev setup use 'jetkit streams apply --replicas 1' instead of changing the contract.`,
    });
  }
  return breaks;
}

/**
 * A stream whose duplicate window is shorter than the producers' retry deadline: a producer that
 * retries an unacknowledged publish (same Nats-Msg-Id) after the window has passed stores the
 * event twice, and consumers see the duplicate in the history.
 */
export function duplicateWindowBreaks(catalog: Catalog, retryDeadlineMs: number): CatalogBreak[] {
  const breaks: CatalogBreak[] = [];
  for (const s of catalog.streams) {
    if (s.duplicateWindowMs >= retryDeadlineMs) continue;
    breaks.push({
      file: s.file,
      rule: "STREAM_DUPLICATE_WINDOW_SHORT",
      ...streamLine(catalog, s, "duplicateWindowMs"),
      message: `stream ${s.name}: duplicate_window ${s.duplicateWindowMs} ms is shorter than the producers' retry deadline (${retryDeadlineMs} ms); a publish retried after the window with the same Nats-Msg-Id is stored twice.`,
      fix: `set duplicate_window: {seconds: ${Math.ceil(retryDeadlineMs / 1000)}} or more (unset means 2 minutes) on stream ${s.name}.`,
    });
  }
  return breaks;
}
