import type { Catalog } from "@jetkit/contracts";

/** A change between two catalogs that buf cannot see but that breaks publishers or consumers. */
export interface CatalogBreak {
  /** The proto file (relative to the contracts module) where the change shows. */
  readonly file: string;
  readonly rule:
    | "EVENT_SUBJECT_REMOVED"
    | "EVENT_SUBJECT_RENAMED"
    | "EVENT_TYPE_CHANGED"
    | "EVENT_STREAM_MOVED"
    | "STREAM_REMOVED";
  readonly message: string;
  readonly fix: string;
  /** Text whose first occurrence in the current file marks the change (for a line number). */
  readonly anchor?: string;
}

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
  return breaks;
}
