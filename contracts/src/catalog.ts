import { readFileSync } from "node:fs";
import {
  create,
  createFileRegistry,
  type DescExtension,
  type DescField,
  type DescFile,
  type DescMessage,
  type FileRegistry,
  fromBinary,
  getOption,
  hasOption,
  type Message,
  ScalarType,
  toBinary,
} from "@bufbuild/protobuf";
import {
  type FileDescriptorProto,
  FileDescriptorSetSchema,
  file_google_protobuf_descriptor,
  file_google_protobuf_duration,
  file_google_protobuf_timestamp,
} from "@bufbuild/protobuf/wkt";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { ContractErrorCodes, JetkitError } from "./errors.js";
import { EVENT_SUBJECT, hasWildcard, subjectMatches, subjectsOverlap } from "./subjects.js";

/** A JetStream stream declared by a contract file (`option (jetkit.v1.stream)`). */
export interface StreamSpec {
  readonly name: string;
  readonly subjects: readonly string[];
  readonly retention: "limits" | "interest" | "workqueue";
  readonly storage: "file" | "memory";
  /**
   * Replicas the file declares. Absent when it declares none (`replicas` unset or 0): streams
   * as code then picks min(3, JetStream servers in the cluster), 1 on a single server.
   */
  readonly replicas?: number;
  /** 0 means no age limit. */
  readonly maxAgeMs: number;
  readonly duplicateWindowMs: number;
  /** 0 means unlimited. */
  readonly maxBytes: number;
  /** 0 means the server's max_payload. */
  readonly maxMsgSize: number;
  readonly discard: "old" | "new";
  readonly description: string;
  /** Per-message TTLs allowed (`allow_msg_ttl`, the Nats-TTL header). */
  readonly allowMsgTtl: boolean;
  /** Message schedules allowed (`allow_msg_schedules`: delayed events). */
  readonly allowMsgSchedules: boolean;
  /** Atomic batch publishes allowed (`allow_atomic`: all events of a batch stored or none). */
  readonly allowAtomic: boolean;
  /** Fast-ingest batch publishes allowed (`allow_batched`: flow-controlled batches, nats-server 2.14+). */
  readonly allowBatched: boolean;
  /** The proto file that declares it. */
  readonly file: string;
}

/** An event: a message bound to a subject (`option (jetkit.v1.event)`). */
export interface EventSpec {
  /** Fully-qualified message name, the CloudEvents `type`, e.g. `shop.order.v1.OrderFulfillmentCompleted`. */
  readonly type: string;
  readonly subject: string;
  /** Name of the stream that captures the subject. */
  readonly stream: string;
  /** Proto name of the partition key field, when the contract declares one. */
  readonly partitionKey?: string;
  /** Default lifetime of these events in the stream (Nats-TTL), ms, when the contract declares one. */
  readonly ttlMs?: number;
  /** The message descriptor (protobuf-es), for decoding, JSON and validation by reflection. */
  readonly schema: DescMessage;
  readonly file: string;
  /** Leading comment of the message in the proto source. */
  readonly description: string;
}

/** One broken catalog rule. */
export interface CatalogProblem {
  readonly rule: string;
  readonly file: string;
  readonly message: string;
  readonly fix: string;
}

const DEFAULT_DUPLICATE_WINDOW_MS = 120_000;

/** Files that the image imports and the runtime ships itself. */
const KNOWN_IMPORTS: readonly DescFile[] = [
  file_google_protobuf_descriptor,
  file_google_protobuf_duration,
  file_google_protobuf_timestamp,
  file_buf_validate_validate,
];

/**
 * The contracts as data: events by subject and by type, streams, and the registry to decode,
 * encode and validate any event by reflection. Build one with {@link loadCatalog}.
 */
export class Catalog {
  readonly registry: FileRegistry;
  readonly events: readonly EventSpec[];
  readonly streams: readonly StreamSpec[];
  readonly #bySubject = new Map<string, EventSpec>();
  readonly #byType = new Map<string, EventSpec>();

  /** @internal */
  constructor(registry: FileRegistry, events: EventSpec[], streams: StreamSpec[]) {
    this.registry = registry;
    this.events = events;
    this.streams = streams;
    for (const e of events) {
      this.#bySubject.set(e.subject, e);
      this.#byType.set(e.type, e);
    }
  }

  /** The event published on `subject`, or undefined. */
  findBySubject(subject: string): EventSpec | undefined {
    return this.#bySubject.get(subject);
  }

  /** The event whose message is `type` (fully-qualified name), or undefined. */
  findByType(type: string): EventSpec | undefined {
    return this.#byType.get(type);
  }

  /** The event published on `subject`; throws `JK_CONTRACT_UNKNOWN_SUBJECT` naming the known subjects. */
  bySubject(subject: string): EventSpec {
    const spec = this.#bySubject.get(subject);
    if (!spec) {
      throw new JetkitError(
        ContractErrorCodes.UNKNOWN_SUBJECT,
        `no event is published on subject "${subject}". Known subjects: ${[...this.#bySubject.keys()].sort().join(", ")}. Declare the event in a contract (option (jetkit.v1.event)) or fix the subject.`,
        { details: { subject } },
      );
    }
    return spec;
  }

  /** The event whose message is `type`; throws `JK_CONTRACT_UNKNOWN_TYPE`. */
  byType(type: string): EventSpec {
    const spec = this.#byType.get(type);
    if (!spec) {
      throw new JetkitError(
        ContractErrorCodes.UNKNOWN_TYPE,
        `"${type}" is not an event of the catalog: only messages with option (jetkit.v1.event) can be published. Known events: ${[...this.#byType.keys()].sort().join(", ")}.`,
        { details: { type } },
      );
    }
    return spec;
  }

  /** The stream named `name`, or undefined. */
  stream(name: string): StreamSpec | undefined {
    return this.streams.find((s) => s.name === name);
  }

  /** The stream whose subjects capture `subject`, or undefined. */
  streamFor(subject: string): StreamSpec | undefined {
    return this.streams.find((s) => s.subjects.some((p) => subjectMatches(p, subject)));
  }

  /** Decodes protobuf binary as the event's message (protobuf-es); throws `JK_CONTRACT_UNDECODABLE`. */
  decode(spec: EventSpec, bytes: Uint8Array): Message {
    try {
      return fromBinary(spec.schema, bytes);
    } catch (err) {
      throw new JetkitError(
        ContractErrorCodes.UNDECODABLE,
        `payload is not a valid ${spec.type}: ${(err as Error).message}`,
        { cause: err, details: { type: spec.type, subject: spec.subject } },
      );
    }
  }
}

/** Where the packaged image lives: contracts/gen/jetkit.binpb, regenerated by `pnpm generate`. */
export const DEFAULT_IMAGE_PATH = new URL("../../gen/jetkit.binpb", import.meta.url);

let defaultCatalog: Catalog | undefined;

/** The catalog of the packaged contracts, loaded once. */
export function getCatalog(): Catalog {
  defaultCatalog ??= loadCatalog();
  return defaultCatalog;
}

/**
 * Loads a catalog from a buf image (`buf build --as-file-descriptor-set`), by default the
 * packaged one, and checks its rules. Throws `JK_CATALOG_INVALID` listing every broken rule.
 */
export function loadCatalog(
  image: Uint8Array | string | URL = DEFAULT_IMAGE_PATH,
  opts: { withPlatformEvents?: boolean } = {},
): Catalog {
  const { catalog, problems } = inspectImage(
    opts.withPlatformEvents ? withPlatformEvents(readImage(image)) : image,
  );
  if (problems.length > 0) {
    throw new JetkitError(
      ContractErrorCodes.CATALOG_INVALID,
      `the contracts break ${problems.length} catalog rule(s):\n${problems.map((p) => `  ${p.file}: [${p.rule}] ${p.message} Fix: ${p.fix}`).join("\n")}`,
      { details: { problems } },
    );
  }
  return catalog;
}

/** The bytes of an image given as bytes or a path. */
function readImage(image: Uint8Array | string | URL): Uint8Array {
  try {
    return typeof image === "string" || image instanceof URL ? readFileSync(image) : image;
  } catch (err) {
    throw new JetkitError(
      ContractErrorCodes.CATALOG_INVALID,
      `cannot read the contracts image ${String(image)}: ${(err as Error).message}. Run 'pnpm generate' to build it.`,
      { cause: err },
    );
  }
}

/**
 * A team's image with jetkit's own platform files added where it lacks them (`jetkit/v1/*`: the
 * dead letter and gateway audit events and their DLQ and AUDIT streams, from the packaged image),
 * so the DLQ tools and the gateway work on contracts that import only jetkit's options.
 */
export function withPlatformEvents(image: Uint8Array): Uint8Array {
  const team = fromBinary(FileDescriptorSetSchema, image);
  const have = new Set(team.file.map((f) => f.name));
  const platform = fromBinary(FileDescriptorSetSchema, readImage(DEFAULT_IMAGE_PATH)).file.filter(
    (f) => f.name.startsWith("jetkit/") && !have.has(f.name),
  );
  if (platform.length === 0) return image;
  return toBinary(
    FileDescriptorSetSchema,
    create(FileDescriptorSetSchema, { file: [...team.file, ...platform] }),
  );
}

/** Builds the catalog and returns it with every broken rule, without throwing on problems. */
export function inspectImage(image: Uint8Array | string | URL): {
  catalog: Catalog;
  problems: CatalogProblem[];
} {
  const bytes = readImage(image);
  const registry = registryFromImage(bytes);
  return buildCatalog(registry, imageFileNames(bytes));
}

function imageFileNames(bytes: Uint8Array): string[] {
  return fromBinary(FileDescriptorSetSchema, bytes).file.map((f) => f.name);
}

/** A protobuf-es registry of the image's files, imports resolved to the copies the runtime ships. */
export function registryFromImage(bytes: Uint8Array): FileRegistry {
  let set: ReturnType<typeof fromBinary<typeof FileDescriptorSetSchema>>;
  try {
    set = fromBinary(FileDescriptorSetSchema, bytes);
  } catch (err) {
    throw new JetkitError(
      ContractErrorCodes.CATALOG_INVALID,
      `the contracts image is not a FileDescriptorSet: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const protos = new Map<string, FileDescriptorProto>(set.file.map((f) => [f.name, f]));
  const known = new Map<string, DescFile>(KNOWN_IMPORTS.map((f) => [f.proto.name, f]));
  const registries: FileRegistry[] = [];
  for (const proto of set.file) {
    const reg = createFileRegistry(proto, (name) => known.get(name) ?? protos.get(name));
    const file = reg.getFile(proto.name);
    if (file) known.set(proto.name, file);
    registries.push(reg);
  }
  return createFileRegistry(...registries);
}

function extension(registry: FileRegistry, name: string): DescExtension {
  const ext = registry.getExtension(name);
  if (!ext) {
    throw new JetkitError(
      ContractErrorCodes.CATALOG_INVALID,
      `the contracts image has no ${name} extension: the image must include jetkit/v1/options.proto.`,
    );
  }
  return ext;
}

interface StreamOptionsShape {
  name: string;
  subjects: string[];
  retention: number;
  storage: number;
  replicas: number;
  maxAge?: { seconds: bigint; nanos: number };
  duplicateWindow?: { seconds: bigint; nanos: number };
  maxBytes: bigint;
  maxMsgSize: number;
  discard: number;
  description: string;
  allowMsgTtl: boolean;
  allowMsgSchedules: boolean;
  allowAtomic: boolean;
  allowBatched: boolean;
}

interface EventOptionsShape {
  subject: string;
  partitionKey: string;
  ttl?: { seconds: bigint; nanos: number };
}

const durationMs = (d: { seconds: bigint; nanos: number } | undefined) =>
  d ? Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6) : 0;

function buildCatalog(
  registry: FileRegistry,
  fileNames: string[],
): { catalog: Catalog; problems: CatalogProblem[] } {
  const streamExt = extension(registry, "jetkit.v1.stream");
  const eventExt = extension(registry, "jetkit.v1.event");
  const problems: CatalogProblem[] = [];
  const streams: StreamSpec[] = [];
  const events: EventSpec[] = [];
  const problem = (file: string, rule: string, message: string, fix: string) =>
    problems.push({ file, rule, message, fix });

  for (const name of fileNames) {
    const file = registry.getFile(name);
    if (!file) continue;
    let stream: StreamSpec | undefined;
    if (hasOption(file, streamExt)) {
      const o = getOption(file, streamExt) as unknown as StreamOptionsShape;
      stream = {
        name: o.name,
        subjects: [...o.subjects],
        retention: (["limits", "limits", "interest", "workqueue"] as const)[o.retention] ?? "limits",
        storage: o.storage === 2 ? "memory" : "file",
        ...(o.replicas > 0 ? { replicas: o.replicas } : {}),
        maxAgeMs: durationMs(o.maxAge),
        duplicateWindowMs: durationMs(o.duplicateWindow) || DEFAULT_DUPLICATE_WINDOW_MS,
        maxBytes: Number(o.maxBytes),
        maxMsgSize: o.maxMsgSize,
        discard: o.discard === 2 ? "new" : "old",
        description: o.description,
        allowMsgTtl: o.allowMsgTtl === true,
        allowMsgSchedules: o.allowMsgSchedules === true,
        allowAtomic: o.allowAtomic === true,
        allowBatched: o.allowBatched === true,
        file: name,
      };
      if (!/^[A-Z][A-Z0-9_]*$/.test(stream.name)) {
        problem(
          name,
          "STREAM_NAME",
          `stream name "${stream.name}" is not upper-case letters, digits and _.`,
          `name the stream like "ORDER".`,
        );
      }
      if (stream.subjects.length === 0) {
        problem(
          name,
          "STREAM_SUBJECTS",
          `stream ${stream.name} declares no subjects.`,
          `add subjects: ["<domain>.>"].`,
        );
      }
      for (const other of streams) {
        if (other.name === stream.name) {
          problem(
            name,
            "STREAM_UNIQUE",
            `stream ${stream.name} is also declared in ${other.file}.`,
            "declare each stream once, in the file of its domain.",
          );
        }
        for (const a of stream.subjects) {
          for (const b of other.subjects) {
            if (subjectsOverlap(a, b)) {
              problem(
                name,
                "STREAM_OVERLAP",
                `subjects "${a}" of ${stream.name} overlap "${b}" of ${other.name}; JetStream refuses overlapping streams.`,
                "give each domain its own subject prefix.",
              );
            }
          }
        }
      }
      streams.push(stream);
    }

    const messages: DescMessage[] = [];
    const collect = (m: DescMessage) => {
      messages.push(m);
      m.nestedMessages.forEach(collect);
    };
    file.messages.forEach(collect);
    for (const message of messages) {
      if (!hasOption(message, eventExt)) continue;
      const o = getOption(message, eventExt) as unknown as EventOptionsShape;
      const where = `${name} (${message.typeName})`;
      if (!EVENT_SUBJECT.test(o.subject)) {
        const why = hasWildcard(o.subject)
          ? "has a wildcard"
          : "is not <domain>.<entity>.<event> in lower case";
        problem(
          where,
          "EVENT_SUBJECT_FORM",
          `subject "${o.subject}" ${why}.`,
          `use three lower-case tokens, e.g. "order.fulfillment.completed".`,
        );
      }
      const dup = events.find((e) => e.subject === o.subject);
      if (dup) {
        problem(
          where,
          "EVENT_SUBJECT_UNIQUE",
          `subject "${o.subject}" is also bound to ${dup.type}.`,
          "bind each subject to exactly one message.",
        );
      }
      if (!stream) {
        problem(
          where,
          "EVENT_STREAM",
          `event ${message.typeName} is in a file without option (jetkit.v1.stream).`,
          "declare the domain's stream on the file that holds its events.",
        );
      } else if (!stream.subjects.some((p) => subjectMatches(p, o.subject))) {
        problem(
          where,
          "EVENT_IN_STREAM",
          `subject "${o.subject}" is outside stream ${stream.name}'s subjects (${stream.subjects.join(", ")}).`,
          "move the event to its domain's file or fix the subject's first token.",
        );
      }
      let keyField: DescField | undefined;
      if (o.partitionKey) {
        keyField = message.fields.find((f) => f.name === o.partitionKey);
        if (keyField?.fieldKind !== "scalar" || keyField.scalar !== ScalarType.STRING) {
          problem(
            where,
            "EVENT_PARTITION_KEY",
            `partition_key "${o.partitionKey}" is not a string field of ${message.typeName}.`,
            "name a singular string field of the message, or leave partition_key empty.",
          );
        }
      }
      const ttlMs = durationMs(o.ttl);
      if (ttlMs > 0 && ttlMs < 1000) {
        problem(
          where,
          "EVENT_TTL",
          `ttl of ${ttlMs} ms is under a second.`,
          "give a ttl of 1 s or more (Nats-TTL counts seconds).",
        );
      }
      if (ttlMs > 0 && stream && !stream.allowMsgTtl) {
        problem(
          where,
          "EVENT_TTL_STREAM",
          `event ${message.typeName} declares a ttl but stream ${stream.name} does not allow per-message TTLs.`,
          "set allow_msg_ttl: true on the file's (jetkit.v1.stream) option, or drop the ttl.",
        );
      }
      events.push({
        type: message.typeName,
        subject: o.subject,
        stream: stream?.name ?? "",
        ...(o.partitionKey ? { partitionKey: o.partitionKey } : {}),
        ...(ttlMs > 0 ? { ttlMs } : {}),
        schema: message,
        file: name,
        description: leadingComment(file, message),
      });
    }
  }
  return { catalog: new Catalog(registry, events, streams), problems };
}

/** The partition key of a decoded event (protobuf-es message), or undefined when it has none. */
export function partitionKeyOf(spec: EventSpec, message: Message): string | undefined {
  if (!spec.partitionKey) return undefined;
  const field = spec.schema.fields.find((f) => f.name === spec.partitionKey);
  if (!field) return undefined;
  const value = (message as unknown as Record<string, unknown>)[field.localName];
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** Leading comment of a top-level message from the file's source info (kept in the image). */
function leadingComment(file: DescFile, message: DescMessage): string {
  const index = file.messages.indexOf(message);
  if (index < 0) return "";
  const loc = file.proto.sourceCodeInfo?.location.find(
    (l) => l.path.length === 2 && l.path[0] === 4 && l.path[1] === index,
  );
  return (loc?.leadingComments ?? "").trim();
}
