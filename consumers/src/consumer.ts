import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import type { DescMessage, Message } from "@bufbuild/protobuf";
import {
  type Catalog,
  ContractErrorCodes,
  ContractValidator,
  checkEventHeaders,
  EventHeaders,
  type EventSpec,
  type EventType,
  type FailureClass,
  getCatalog,
  isJetkitError,
  JetkitError,
  partitionKeyOf,
  type ReceivedEventHeaders,
  subjectMatches,
  subjectsOverlap,
} from "@jetkit/contracts";
import { ProtoReader } from "@jetkit/contracts/proto";
import {
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import {
  type Attributes,
  type Context,
  context,
  isSpanContextValid,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  type SpanOptions,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { type Bindings, type Logger, pino } from "pino";
import { AckBatcher } from "./ack-batcher.js";
import { watchMaxDeliveries } from "./advisories.js";
import { nakDelay } from "./backoff.js";
import { BatchCollector, type BatchHandler, type BatchOptions } from "./batch.js";
import { type DeadLetter, publishDeadLetter } from "./dead-letter.js";
import { deliveryOf } from "./delivery-info.js";
import { durableConfig, ensureDurable } from "./durable.js";
import { ConsumerErrorCodes, isPermanentError, reasonOf } from "./errors.js";
import { Fifo } from "./fifo.js";
import { PartitionGroup } from "./group.js";
import { GroupReader, type PartState } from "./group-reader.js";
import { type HealthServer, startHealthServer } from "./health.js";
import { ClaimLostError, IdempotencyStore } from "./idempotency.js";
import { KeyLanes } from "./key-lanes.js";
import { lazyChild } from "./lazy-logger.js";
import { type ConsumerOptions, type ResolvedOptions, resolveOptions } from "./options.js";
import { partitionOf } from "./partition.js";
import { type ReceivedHeaders, receivedHeaders } from "./received-headers.js";
import { Attr, createTelemetry, errorType, messageAttributes, type Telemetry } from "./telemetry.js";
import { extractParent } from "./trace-context.js";

/** What a handler learns about the message it handles. */
export interface HandlerContext {
  readonly subject: string;
  readonly stream: string;
  /** Stream sequence of the message. */
  readonly seq: number;
  /** Delivery count, 1 on the first delivery (in per-key mode, in-place retries count too). */
  readonly delivery: number;
  /** The event id (ce-id). */
  readonly eventId: string;
  /** The JetStream message id (Nats-Msg-Id; differs from ce-id on a replay of a dead letter). */
  readonly msgId: string;
  readonly correlationId: string | undefined;
  readonly causationId: string | undefined;
  readonly partitionKey: string | undefined;
  /** Set when the message is a replay of a dead letter: `DLQ:<seq>`. */
  readonly replayOf: string | undefined;
  /** The CloudEvents attributes as received. */
  readonly headers: ReceivedEventHeaders;
  /** Child logger with subject, msg_id, stream, seq, delivery, trace_id, correlation_id. */
  readonly logger: Logger;
  /** Aborted when `stop()` reaches its deadline while this handler still runs. */
  readonly signal: AbortSignal;
  /** Tells the server the handler is still working, so it does not redeliver after ack wait. */
  working(): void;
}

/** A handler for events of one type; throw to retry, throw {@link PermanentError} to dead-letter at once. */
export type Handler<T> = (event: T, ctx: HandlerContext) => Promise<void> | void;

/** An event of a type the consumer was not built with, decoded with the registry version its `ce-dataschema` names. */
export interface RegisteredEvent {
  /** `ce-type`: the fully-qualified message name. */
  readonly type: string;
  readonly subject: string;
  /** The registry version the producer encoded with. */
  readonly version: number;
  /** The payload decoded with that version's contracts (a protobuf-es message; `toJson` with `schema`). */
  readonly message: Message;
  readonly schema: DescMessage;
}

/** Consumer lag summed over the durable's streams. */
export interface ConsumerLag {
  /** Messages stored but not yet delivered to the durable (num_pending). */
  pending: number;
  /** Messages delivered and not yet acknowledged (num_ack_pending). */
  ackPending: number;
  /** Messages waiting for redelivery (num_redelivered). */
  redelivered: number;
}

/** A typed event consumer: register handlers with `on`, then `start`; `stop` drains it. */
export interface Consumer {
  readonly durable: string;
  /** Registers the handler of one event type (before `start`). */
  on<T>(type: EventType<T>, handler: Handler<T>): Consumer;
  /**
   * Registers a batch handler of one event type (before `start`): it gets up to `max` events at
   * once (`maxWaitMs` after the first at the latest) and says which to retry or dead-letter; the
   * others succeed. Each message keeps every per-message rule of `on` (contract checks, idempotency
   * claim and record, per-key order, dead-lettering, acks).
   */
  onBatch<T>(type: EventType<T>, handler: BatchHandler<T, HandlerContext>, opts?: BatchOptions): Consumer;
  /**
   * Registers the handler of events whose type this consumer's catalog does not know but the
   * contract registry does (option `registry`, the event's `ce-dataschema`): they are decoded
   * with the registered version's contracts instead of being dead-lettered as `unknown_type`.
   * The consumer must receive their subjects (`subjects`, e.g. `order.>`).
   */
  onRegistered(handler: Handler<RegisteredEvent>): Consumer;
  /** Creates or updates the durable(s) and starts consuming. */
  start(): Promise<void>;
  /** Stops pulling, lets in-flight handlers finish until `timeoutMs` (default 10 s), naks the rest, drains. */
  stop(opts?: { timeoutMs?: number }): Promise<void>;
  /** True while connected and every consume loop is running. */
  isReady(): boolean;
  /**
   * Live lag from the server. In a partitioned consumer group: what this process has not read yet
   * (`pending`) and has read and not finished (`ackPending`).
   */
  lag(): Promise<ConsumerLag>;
  /** Partitioned consumer groups: the partitions this process owns now (empty otherwise). */
  ownedPartitions(): number[];
  /** URL of the health probe when `health` was set. */
  readonly healthUrl: string | undefined;
}

interface Registration {
  type: EventType<unknown>;
  spec: EventSpec;
  handler: Handler<unknown>;
  /** Set for `onBatch`: the handler's messages go through it instead of `handler`. */
  batch?: BatchCollector<unknown, HandlerContext>;
}

/** One durable on one stream, with its filter subjects and current consume loop. */
interface Binding {
  stream: string;
  subjects: string[];
  iter: ConsumerMessages | undefined;
  loop: Promise<void> | undefined;
  /** Why the loop stopped its own iterator (logged at info instead of as a failure). */
  restart: string | undefined;
  /** Partitioned consumer group mode: the reader of the stream and the group's membership. */
  group?: { reader: GroupReader<InFlight>; members: PartitionGroup };
}

/** One delivery, from its arrival to its outcome. */
interface InFlight {
  msg: JsMsg;
  binding: Binding;
  /** The handler path began (false while queued for a slot or waiting for its key's turn). */
  started: boolean;
  /** stop() gave up on it and nak'd it: no ack any more. */
  abandoned: boolean;
  /** The message's headers (name -> first value), read once on first use. */
  headers: ReceivedHeaders | undefined;
  /** Stream sequence and delivery count, from the reply subject. */
  seq: number;
  delivery: number;
  /** The partition it belongs to (partitioned consumer groups): settled there, not on the server. */
  part: PartState | undefined;
  /** The partition key (per-key ordering), once computed. */
  key: string | undefined;
  /** Waiting in an open batch of a batch handler. */
  inBatch: boolean;
}

/** A delivery that just arrived on binding `b`, before anything was done with it. */
function inFlightOf(b: Binding, m: JsMsg): InFlight {
  const { seq, deliveryCount } = deliveryOf(m);
  return {
    msg: m,
    binding: b,
    started: false,
    abandoned: false,
    headers: undefined,
    seq,
    delivery: deliveryCount,
    part: undefined,
    key: undefined,
    inBatch: false,
  };
}

/**
 * Per event type: whether its generated decode reads jetkit's {@link ProtoReader}. ts-proto's
 * decode takes a reader when it is an `instanceof` the BinaryReader its own code imports; a team's
 * code built against another copy of @bufbuild/protobuf would wrap ours in a new reader of no
 * bytes and return an empty event. Learnt from the first non-empty payload of each type.
 */
const readsProtoReader = new WeakMap<EventType<unknown>, boolean>();

/**
 * The payload as the handler's event. ts-proto's generated decode reads from a reader it is
 * given (the `EventType` interface declares only bytes): jetkit's ProtoReader makes the short
 * ASCII strings of an event (ids, codes) without a text decoder call each. A type whose decode
 * does not consume that reader (see {@link readsProtoReader}) is given the bytes.
 */
function decodeEvent(type: EventType<unknown>, data: Uint8Array): unknown {
  const known = readsProtoReader.get(type);
  if (known === false) return type.decode(data);
  const reader = new ProtoReader(data);
  if (known === true || data.length === 0) return type.decode(reader as unknown as Uint8Array);
  // First payload of this type: a decode that did not consume the reader (or failed on it, as
  // a foreign runtime's reader does on an object that is not bytes) is retried with the bytes;
  // if those decode, the type is given bytes from now on. Undecodable bytes throw from there.
  let event: unknown;
  try {
    event = type.decode(reader as unknown as Uint8Array);
    if (reader.pos === data.length) {
      readsProtoReader.set(type, true);
      return event;
    }
  } catch {}
  event = type.decode(data);
  readsProtoReader.set(type, false);
  return event;
}

/** The delivery's headers, read in one pass the first time they are needed. */
function headersOf(f: InFlight): ReceivedHeaders {
  f.headers ??= receivedHeaders(f.msg);
  return f.headers;
}

type Outcome = "ack" | "nak" | "dead" | "abandoned";

/** Span options of every process span (one object: tracers only read it). */
const CONSUMER_SPAN: SpanOptions = { kind: SpanKind.CONSUMER };

/** What is the same for every message of one subject: metric attributes and the span name. */
interface SubjectAttributes {
  base: Attributes;
  ok: Attributes;
  error: Attributes;
  spanName: string;
}

/** Log fields of every line about one delivery. */
function deliveryFields(f: InFlight): Bindings {
  return {
    subject: f.msg.subject,
    stream: f.binding.stream,
    seq: f.seq,
    delivery: f.delivery,
    msg_id: f.headers?.msgId || undefined,
  };
}

/** A delivery that passed the wire and contract checks, on its way through its handler. */
class Run {
  #log: Logger | undefined;
  /** Revision of this process's claim on the event id in the idempotency store, while held. */
  claim: number | undefined;
  /** Renews the claim while the handler runs. */
  renewal: NodeJS.Timeout | undefined;
  /** The claim was taken over by another process (this one was paused or cut off past its lease). */
  claimLost = false;

  constructor(
    readonly f: InFlight,
    readonly reg: Registration,
    readonly event: unknown,
    readonly wire: ReceivedEventHeaders,
    /** The CONSUMER process span (non-recording without a tracer provider). */
    readonly span: Span,
    /** The context the handler runs in: the process span active. */
    readonly active: Context,
    readonly parentLog: Logger,
  ) {}

  /** Child logger of this delivery, made on first use (most deliveries never log). */
  get log(): Logger {
    this.#log ??= lazyChild(this.parentLog, () => ({
      ...deliveryFields(this.f),
      trace_id: this.span.spanContext().traceId,
      ...(this.wire.correlationId ? { correlation_id: this.wire.correlationId } : {}),
    }));
    return this.#log;
  }
}

/** What a handler is given (one object per attempt; the logger is made when first read). */
class DeliveryContext implements HandlerContext {
  readonly subject: string;
  readonly stream: string;
  readonly seq: number;
  readonly delivery: number;
  readonly eventId: string;
  readonly msgId: string;
  readonly correlationId: string | undefined;
  readonly causationId: string | undefined;
  readonly partitionKey: string | undefined;
  readonly replayOf: string | undefined;
  readonly headers: ReceivedEventHeaders;
  readonly signal: AbortSignal;
  /** An own function, so `const { working } = ctx` keeps working. */
  readonly working: () => void;
  readonly #run: Run;
  #logger: Logger | undefined;

  constructor(run: Run, attempt: number, signal: AbortSignal) {
    const { f, wire } = run;
    this.subject = f.msg.subject;
    this.stream = f.binding.stream;
    this.seq = f.seq;
    this.delivery = attempt;
    this.eventId = wire.id;
    this.msgId = wire.msgId;
    this.correlationId = wire.correlationId;
    this.causationId = wire.causationId;
    this.partitionKey = wire.partitionKey;
    this.replayOf = wire.replayOf;
    this.headers = wire;
    this.signal = signal;
    this.working = () => {
      if (!f.part) f.msg.working();
    };
    this.#run = run;
  }

  get logger(): Logger {
    if (!this.#logger) {
      const attempt = this.delivery;
      const log = this.#run.log;
      this.#logger = attempt === this.#run.f.delivery ? log : lazyChild(log, () => ({ attempt }));
    }
    return this.#logger;
  }
}

/**
 * Creates a consumer and connects (unless `connection` is given). Nothing is pulled before
 * `start()`. Throws `JK_CONSUMER_CONFIG` for bad options, `JK_CONSUMER_CONNECT` when the server
 * cannot be reached.
 */
export async function createConsumer(
  opts: Partial<ConsumerOptions> & { durable: string },
): Promise<Consumer> {
  const o = resolveOptions(opts);
  let nc = o.connection;
  const owns = nc === undefined;
  if (!nc) {
    try {
      nc = await connect({
        servers: o.servers,
        name: o.name ?? `jetkit-consumer-${o.durable}`,
        // Async stack traces cost an Error per request (idempotency lookups, records, dead letters).
        noAsyncTraces: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        pingInterval: 5_000,
      });
    } catch (err) {
      throw new JetkitError(
        ConsumerErrorCodes.CONNECT,
        `could not connect to NATS at ${String(o.servers)}: ${(err as Error).message}. Check the server runs and the URL.`,
        { cause: err, details: { servers: o.servers } },
      );
    }
  }
  return new JetkitConsumer(o, nc, owns);
}

/** The group reader's JetStream API request timeout (see #joinGroup), ms. */
const GROUP_READER_API_TIMEOUT_MS = 1000;

const STATUS_LOG_LEVEL: Record<string, "warn" | "info" | "debug"> = {
  heartbeats_missed: "warn",
  consumer_deleted: "warn",
  consumer_not_found: "warn",
  stream_not_found: "warn",
  no_responders: "warn",
  exceeded_limits: "warn",
  reset: "info",
};

class JetkitConsumer implements Consumer {
  readonly durable: string;
  readonly #o: ResolvedOptions;
  readonly #nc: NatsConnection;
  readonly #ownsConnection: boolean;
  readonly #js: JetStreamClient;
  #jsm: JetStreamManager | undefined;
  readonly #catalog: Catalog;
  readonly #validator: ContractValidator | undefined;
  readonly #log: Logger;
  readonly #tel: Telemetry;
  readonly #handlers = new Map<string, Registration>();
  /** Some handler is a batch handler (every message's finish then checks for stalled batches). */
  #hasBatches = false;
  #registered: Handler<RegisteredEvent> | undefined;
  readonly #bindings: Binding[] = [];
  readonly #lanes = new KeyLanes();
  /** Deliveries received and waiting for a handler slot, in arrival order. */
  readonly #queue = new Fifo<InFlight>();
  /** Deliveries holding a handler slot (at most `concurrency`). */
  readonly #inFlight = new Set<InFlight>();
  /** Resolves stop()'s wait once nothing holds a slot. */
  #idle: (() => void) | undefined;
  readonly #acks: AckBatcher;
  /** Metric and span attributes per subject, built once (every message would allocate them). */
  readonly #attrs = new Map<string, SubjectAttributes>();
  readonly #firstFailure = new Map<string, Date>();
  readonly #shutdown = new AbortController();
  readonly #advisorySubs: Subscription[] = [];
  #store: IdempotencyStore | undefined;
  /** Event ids whose handler runs in this process under a claim. */
  readonly #claimedHere = new Set<string>();
  #health: HealthServer | undefined;
  /** This process's instance id in consumer groups and idempotency claims. */
  readonly #instance =
    `${hostname().replace(/[^A-Za-z0-9_-]/g, "_")}-${process.pid}-${randomUUID().slice(0, 8)}`;
  #state: "new" | "starting" | "running" | "stopping" | "stopped" = "new";
  #connected = true;
  #lastLag: ConsumerLag = { pending: 0, ackPending: 0, redelivered: 0 };
  #timers: NodeJS.Timeout[] = [];
  /**
   * True while #startReceived runs: the acks written meanwhile leave in one socket write, which
   * nats-core flushes once that turn's work is done.
   */
  #receiving = false;
  /** The turn that starts the messages received by the consume callback (see #receive). */
  #startScheduled: NodeJS.Immediate | undefined;

  constructor(o: ResolvedOptions, nc: NatsConnection, owns: boolean) {
    this.#o = o;
    this.durable = o.durable;
    this.#nc = nc;
    this.#ownsConnection = owns;
    this.#js = jetstream(nc);
    this.#catalog = o.catalog ?? getCatalog();
    this.#validator = o.validate ? new ContractValidator(this.#catalog) : undefined;
    this.#log = (
      o.logger ?? pino({ name: "jetkit-consumer", level: process.env.JETKIT_LOG_LEVEL ?? "info" })
    ).child({ durable: o.durable });
    this.#tel = createTelemetry(o);
    this.#acks = new AckBatcher((err, m) =>
      this.#log.warn({ err, seq: m.seq }, "could not send an ack; the server redelivers after ack wait"),
    );
    for (const t of o.events ?? []) this.#catalog.byType(t.$type);
  }

  get healthUrl(): string | undefined {
    return this.#health?.url;
  }

  on<T>(type: EventType<T>, handler: Handler<T>): Consumer {
    this.#register(type, "on", handler as Handler<unknown>);
    return this;
  }

  onRegistered(handler: Handler<RegisteredEvent>): Consumer {
    if (this.#state !== "new" || !this.#o.registry) {
      throw new JetkitError(
        this.#o.registry ? ConsumerErrorCodes.STATE : ConsumerErrorCodes.CONFIG,
        this.#o.registry
          ? "onRegistered() was called after start(): register every handler before starting the consumer."
          : "onRegistered() needs the registry option (e.g. registry: new RegistryResolver(nc) from @jetkit/cli) to look up types the catalog does not know.",
      );
    }
    this.#registered = handler;
    return this;
  }

  onBatch<T>(
    type: EventType<T>,
    handler: BatchHandler<T, HandlerContext>,
    opts: BatchOptions = {},
  ): Consumer {
    const spec = this.#catalog.byType(type.$type);
    const batch = new BatchCollector<unknown, HandlerContext>(
      spec.type,
      handler as BatchHandler<unknown, HandlerContext>,
      opts,
      this.#o.concurrency,
      (entries, call) => this.#runBatch(spec, entries, call),
      this.#shutdown.signal,
      (err) => this.#log.error({ err, type: spec.type }, "batch handler returned a wrong outcome"),
    );
    this.#register(
      type,
      "onBatch",
      () => {
        throw new Error("unreachable: batch registrations run through their collector");
      },
      batch,
    );
    return this;
  }

  #register(
    type: EventType<unknown>,
    method: "on" | "onBatch",
    handler: Handler<unknown>,
    batch?: BatchCollector<unknown, HandlerContext>,
  ): void {
    if (this.#state !== "new") {
      throw new JetkitError(
        ConsumerErrorCodes.STATE,
        `${method}(${type.$type}) was called after start(): register every handler before starting the consumer.`,
        { details: { type: type.$type } },
      );
    }
    const spec = this.#catalog.byType(type.$type);
    const filters = this.#explicitSubjects();
    if (filters.length > 0 && !filters.some((f) => subjectMatches(f, spec.subject))) {
      throw new JetkitError(
        ConsumerErrorCodes.CONFIG,
        `handler for ${spec.type} (subject ${spec.subject}) can never run: durable ${this.durable} consumes only ${filters.join(", ")}. Add the event to the events/subjects option.`,
        { details: { type: spec.type, subject: spec.subject } },
      );
    }
    this.#handlers.set(spec.type, { type, spec, handler, ...(batch ? { batch } : {}) });
    if (batch) this.#hasBatches = true;
  }

  /** Runs a batch handler in a CONSUMER span of its own, linked to each message's process span. */
  async #runBatch(
    spec: EventSpec,
    entries: ReadonlyArray<{ token: unknown }>,
    call: () => unknown,
  ): Promise<unknown> {
    const links = entries.map((e) => ({ context: (e.token as Run).span.spanContext() }));
    const span = this.#tel.tracer.startSpan(
      `process batch ${spec.subject}`,
      {
        kind: SpanKind.CONSUMER,
        links,
        attributes: {
          ...messageAttributes(this.durable, spec.subject),
          "messaging.operation.type": "process",
          "messaging.batch.message_count": entries.length,
        },
      },
      ROOT_CONTEXT,
    );
    try {
      return await context.with(trace.setSpan(ROOT_CONTEXT, span), call);
    } catch (err) {
      span.recordException(err instanceof Error ? err : new Error(String(err)));
      span.setStatus({ code: SpanStatusCode.ERROR, message: reasonOf(err) });
      throw err;
    } finally {
      span.end();
    }
  }

  /**
   * Hands open batches to their handlers when no message can join them any more: every handler
   * slot is held by a message waiting in a batch or waiting for its key's turn (behind a message
   * in a batch, under per-key order). Without this a batch would wait out its `maxWaitMs`.
   */
  #flushStalledBatches(): void {
    if (!this.#hasBatches) return;
    if (this.#inFlight.size < this.#o.concurrency && this.#state === "running") return;
    let open = false;
    for (const r of this.#handlers.values()) if (r.batch && r.batch.size > 0) open = true;
    if (!open) return;
    for (const f of this.#inFlight) if (f.started && !f.inBatch && !f.abandoned) return;
    for (const r of this.#handlers.values()) r.batch?.flush();
  }

  #explicitSubjects(): string[] {
    const fromEvents = (this.#o.events ?? []).map((t) => this.#catalog.byType(t.$type).subject);
    return [...fromEvents, ...(this.#o.subjects ?? [])];
  }

  async start(): Promise<void> {
    if (this.#state !== "new") {
      throw new JetkitError(
        ConsumerErrorCodes.STATE,
        `start() was called twice on consumer ${this.durable}.`,
      );
    }
    this.#state = "starting";
    let subjects = this.#explicitSubjects();
    if (subjects.length === 0) subjects = [...this.#handlers.values()].map((r) => r.spec.subject);
    if (subjects.length === 0) {
      throw new JetkitError(
        ConsumerErrorCodes.CONFIG,
        `consumer ${this.durable} has nothing to consume: pass events or subjects, or register a handler with on() before start().`,
      );
    }
    const byStream = new Map<string, string[]>();
    for (const s of [...new Set(subjects)]) {
      const stream = this.#catalog.streams.find((st) => st.subjects.some((p) => subjectsOverlap(p, s)));
      if (!stream) {
        throw new JetkitError(
          ConsumerErrorCodes.CONFIG,
          `subject ${s} is captured by no stream of the contracts; consume event subjects such as order.fulfillment.completed.`,
          { details: { subject: s } },
        );
      }
      byStream.set(stream.name, [...(byStream.get(stream.name) ?? []), s]);
    }
    try {
      this.#jsm = await jetstreamManager(this.#nc);
    } catch (err) {
      throw new JetkitError(
        ConsumerErrorCodes.CONNECT,
        `JetStream is not available: ${(err as Error).message}. Enable JetStream on the server.`,
        { cause: err },
      );
    }
    const jsm = this.#jsm;
    try {
      await jsm.streams.info(this.#o.deadLetter.stream);
    } catch (err) {
      throw new JetkitError(
        ConsumerErrorCodes.DLQ_STREAM,
        `dead-letter stream ${this.#o.deadLetter.stream} does not exist: provision the streams from the contracts (it captures dlq.>) before starting consumers.`,
        { cause: err, details: { stream: this.#o.deadLetter.stream } },
      );
    }
    const group = this.#o.group;
    for (const [stream, subs] of byStream) {
      if (!group) await ensureDurable(jsm, stream, durableConfig(this.#o, subs));
      this.#bindings.push({ stream, subjects: subs, iter: undefined, loop: undefined, restart: undefined });
    }
    if (group) {
      for (const b of this.#bindings) b.group = await this.#joinGroup(jsm, b, group);
    }
    if (this.#o.idempotency)
      this.#store = await IdempotencyStore.open(
        this.#js,
        this.durable,
        {
          ...this.#o.idempotency,
          owner: this.#instance,
          // A group member that dies hands its partitions over after the group's lease: the
          // claims it held must lapse as soon, or its keys would wait for them.
          leaseMs: group ? group.leaseMs : this.#o.ackWaitMs,
        },
        Boolean(this.#nc.info?.cluster),
        this.#nc,
      );
    // A new consumer leader (after a node died or stepped down) has none of the pull requests the
    // old one held: pull again at once instead of waiting for two missed heartbeats (~2 x
    // pullExpiresMs / 2). Every process of the durable re-pulls its own, so no queue group.
    // A group reads through an ephemeral ordered consumer, which dies with the stream leader's node
    // when that node dies: read again as soon as the stream has a new leader, instead of after two
    // missed heartbeats (~pullExpiresMs: 5 s, seen in drill leader-kill-group as the SDKs' share).
    for (const b of this.#bindings) {
      const group = b.group;
      if (!group) continue;
      this.#advisorySubs.push(
        this.#nc.subscribe(`$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.${b.stream}`, {
          callback: (err) => {
            if (err) {
              this.#log.warn({ err, stream: b.stream }, "stream leader elected advisory subscription failed");
              return;
            }
            if (this.#state === "running") group.reader.restart("stream leader elected");
          },
        }),
      );
    }
    for (const b of this.#bindings) {
      if (b.group) continue;
      this.#advisorySubs.push(
        this.#nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED.${b.stream}.${this.durable}`, {
          callback: (err) => {
            if (err) {
              this.#log.warn({ err, stream: b.stream }, "leader elected advisory subscription failed");
              return;
            }
            const iter = b.iter;
            if (!iter || this.#state !== "running") return;
            b.restart = "consumer leader elected";
            iter.stop();
          },
        }),
      );
    }
    if (this.#o.deadLetter.advisories) {
      for (const b of this.#bindings) {
        if (b.group) continue;
        this.#advisorySubs.push(
          watchMaxDeliveries(
            this.#nc,
            jsm,
            b.stream,
            this.durable,
            (dl) => this.#storeDeadLetter({ ...dl, consumer: this.durable }),
            this.#log,
          ),
        );
      }
    }
    this.#watchConnection();
    this.#observeLag();
    if (this.#o.health) this.#health = await startHealthServer(this.#o.health, this);
    this.#state = "running";
    for (const b of this.#bindings) {
      if (b.group) await b.group.members.start();
      else b.loop = this.#consumeLoop(b);
    }
    this.#log.info(
      {
        streams: this.#bindings.map((b) => b.stream),
        subjects,
        concurrency: this.#o.concurrency,
        ...(group ? { partitions: group.partitions, member: group.member ?? this.#instance } : {}),
      },
      "consumer started",
    );
  }

  /** Joins the partitioned consumer group of binding `b` (its reader starts with a partition). */
  async #joinGroup(
    jsm: JetStreamManager,
    b: Binding,
    group: NonNullable<ResolvedOptions["group"]>,
  ): Promise<NonNullable<Binding["group"]>> {
    const startSeq =
      this.#o.deliverPolicy === "new" ? (await jsm.streams.info(b.stream)).state.last_seq + 1 : 1;
    const reader = new GroupReader<InFlight>(
      // Its own JetStream client with short API requests: creating the ordered consumer while the
      // stream has no leader waits for the request's timeout, and a 5 s wait (the default) right
      // before the election ends was most of the SDKs' share of a leader kill (3.9 s in one CI
      // run of leader-kill-group); a failed attempt is retried within 1 s, or at once on the
      // stream's leader-elected advisory.
      jetstream(this.#nc, { timeout: GROUP_READER_API_TIMEOUT_MS }),
      b.stream,
      b.subjects,
      { batch: this.#o.batch, maxInFlight: this.#o.maxAckPending, expiresMs: this.#o.pullExpiresMs },
      (m) => this.#route(b, m, group.partitions),
      (f, part) => {
        f.part = part;
        this.#accept(f);
      },
      this.#log.child({ stream: b.stream }),
    );
    const members = await PartitionGroup.join(
      this.#js,
      this.durable,
      b.stream,
      group,
      this.#instance,
      startSeq,
      Boolean(this.#nc.info?.cluster),
      {
        acquired: (p, seq, replayUntil) => {
          this.#tel.partitionChanges.add(1, {
            "messaging.consumer.group.name": this.durable,
            "jetkit.change": "acquired",
          });
          reader.acquired(p, seq, replayUntil);
        },
        release: (p) => {
          this.#tel.partitionChanges.add(1, {
            "messaging.consumer.group.name": this.durable,
            "jetkit.change": "released",
          });
          return reader.release(p);
        },
        lost: (p) => {
          this.#tel.partitionChanges.add(1, {
            "messaging.consumer.group.name": this.durable,
            "jetkit.change": "lost",
          });
          reader.lost(p);
        },
        checkpoint: (p) => reader.checkpoint(p),
      },
      this.#log,
    );
    return { reader, members };
  }

  /** The partition of a message read by a group reader (its key's, else its event id's). */
  #route(b: Binding, m: JsMsg, partitions: number): { partition: number; token: InFlight } {
    const f = inFlightOf(b, m);
    f.key = this.#partitionKey(f);
    const by = f.key ?? headersOf(f).id ?? String(f.seq);
    return { partition: partitionOf(by, partitions), token: f };
  }

  isReady(): boolean {
    return (
      this.#state === "running" &&
      this.#connected &&
      !this.#nc.isClosed() &&
      this.#bindings.every((b) => b.group !== undefined || b.iter !== undefined)
    );
  }

  ownedPartitions(): number[] {
    return this.#bindings.flatMap((b) => b.group?.members.owned ?? []).sort((a, c) => a - c);
  }

  async lag(): Promise<ConsumerLag> {
    const jsm = this.#jsm ?? (await jetstreamManager(this.#nc));
    const lag: ConsumerLag = { pending: 0, ackPending: 0, redelivered: 0 };
    for (const b of this.#bindings) {
      if (b.group) {
        lag.pending += b.group.reader.lastPending;
        lag.ackPending += b.group.reader.inFlight;
        continue;
      }
      const ci = await jsm.consumers.info(b.stream, this.durable);
      lag.pending += ci.num_pending;
      lag.ackPending += ci.num_ack_pending;
      lag.redelivered += ci.num_redelivered;
    }
    this.#lastLag = lag;
    return lag;
  }

  async stop(opts: { timeoutMs?: number } = {}): Promise<void> {
    if (this.#state === "stopped" || this.#state === "stopping") return;
    const wasRunning = this.#state === "running";
    this.#state = "stopping";
    const timeoutMs = opts.timeoutMs ?? 10_000;
    this.#log.info({ in_flight: this.#inFlight.size, timeout_ms: timeoutMs }, "consumer stopping");
    for (const t of this.#timers) clearInterval(t);
    if (this.#startScheduled) clearImmediate(this.#startScheduled);
    this.#startScheduled = undefined;
    for (const sub of this.#advisorySubs) sub.unsubscribe();
    // Stop pulling, and hand the messages waiting for a slot back at once (nak) to other processes.
    for (const b of this.#bindings) b.iter?.stop();
    const readers = this.#bindings.flatMap((b) => (b.group ? [b.group.reader.stop()] : []));
    for (const f of this.#queue.drain()) if (!f.part) f.msg.nak();
    // Nothing new joins a batch now: hand the open ones to their handlers at once.
    for (const r of this.#handlers.values()) r.batch?.flush();
    const settled =
      this.#inFlight.size === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            this.#idle = resolve;
          });
    const timer = sleep(timeoutMs, "timeout" as const, { ref: false });
    const outcome = await Promise.race([settled.then(() => "done" as const), timer]);
    this.#idle = undefined;
    if (outcome === "timeout") {
      this.#shutdown.abort(new Error("consumer stopping"));
      for (const f of this.#inFlight) {
        f.abandoned = true;
        if (!f.part) f.msg.nak();
      }
      this.#log.warn(
        { abandoned: this.#inFlight.size },
        "in-flight handlers passed the stop deadline; nak'd",
      );
    }
    this.#acks.flush();
    if (wasRunning) await Promise.race([Promise.allSettled(this.#bindings.map((b) => b.loop)), sleep(2000)]);
    await Promise.race([Promise.allSettled(readers), sleep(2000)]);
    // Hand the partitions over with their checkpoints (a message not finished stays after it).
    for (const b of this.#bindings) {
      if (b.group)
        await b.group.members
          .leave()
          .catch((err: unknown) => this.#log.warn({ err }, "could not leave the consumer group"));
    }
    await this.#health?.close();
    this.#store?.close();
    if (this.#ownsConnection && !this.#nc.isClosed()) {
      await Promise.race([this.#nc.drain().catch(() => this.#nc.close()), sleep(5000)]);
      if (!this.#nc.isClosed()) await this.#nc.close();
    }
    this.#state = "stopped";
    this.#log.info("consumer stopped");
  }

  async #consumeLoop(b: Binding): Promise<void> {
    let failures = 0;
    const log = this.#log.child({ stream: b.stream });
    const config = durableConfig(this.#o, b.subjects);
    let first = true;
    while (this.#state === "running") {
      try {
        // The durable may have been deleted (or the stream restored): recreate before consuming again.
        if (!first) await ensureDurable(this.#jsm!, b.stream, config);
        first = false;
        const c = await this.#js.consumers.get(b.stream, this.durable);
        // Callback mode: each message reaches #receive synchronously as it is parsed, without an
        // async-iterator hop per message; #receive queues it and starts handlers a turn later.
        const iter = await c.consume({
          max_messages: this.#o.batch,
          expires: this.#o.pullExpiresMs,
          callback: (m) => this.#receive(b, m),
        });
        b.iter = iter;
        // stop() may have run while the loop was connecting: it could not stop this iterator.
        if (this.#state !== "running") iter.stop();
        if (failures > 0) log.info({ attempts: failures }, "consume loop recovered");
        failures = 0;
        this.#watchStatus(b, iter, log);
        const ended = await iter.closed();
        if (ended instanceof Error) throw ended;
        if (this.#state === "running" && b.restart) log.info({ reason: b.restart }, "pulling again");
        else if (this.#state === "running") log.warn("consume loop ended; recreating it");
        if (b.restart) {
          b.restart = undefined;
          b.iter = undefined;
          continue; // at once: the new leader has no pull request of this process
        }
      } catch (err) {
        failures++;
        if (this.#state === "running")
          log.warn({ err, attempt: failures }, "consume loop failed; recreating it");
      }
      b.iter = undefined;
      if (this.#state !== "running") break;
      await sleep(Math.min(5000, 100 * 2 ** Math.min(failures, 6)));
    }
  }

  #watchStatus(b: Binding, iter: ConsumerMessages, log: Logger): void {
    void (async () => {
      for await (const s of iter.status()) {
        const level = STATUS_LOG_LEVEL[s.type];
        if (level) log[level]({ status: s }, `consumer status: ${s.type}`);
        const lost =
          s.type === "consumer_deleted" ||
          (s.type === "consumer_not_found" && s.count >= 2) ||
          (s.type === "heartbeats_missed" && s.count >= 2);
        // The library keeps pulling a consumer that is gone; restart the loop, which recreates it.
        if (lost && b.iter === iter && this.#state === "running") iter.stop();
      }
    })().catch(() => {});
  }

  #watchConnection(): void {
    void (async () => {
      for await (const s of this.#nc.status()) {
        if (s.type === "disconnect") {
          this.#connected = false;
          this.#log.warn({ server: s.server }, "disconnected from NATS");
        } else if (s.type === "reconnect") {
          this.#connected = true;
          this.#log.info({ server: s.server }, "reconnected to NATS");
          for (const b of this.#bindings) b.group?.reader.restart("reconnected");
        } else if (s.type === "error" || s.type === "ldm") {
          this.#log.warn({ status: s.type }, "NATS connection status");
        }
      }
    })().catch(() => {});
  }

  #observeLag(): void {
    this.#tel.lag.addCallback((r) =>
      r.observe(this.#lastLag.pending, { "messaging.consumer.group.name": this.durable }),
    );
    this.#tel.ackPending.addCallback((r) =>
      r.observe(this.#lastLag.ackPending, { "messaging.consumer.group.name": this.durable }),
    );
    this.#tel.partitionsOwned.addCallback((r) => {
      for (const b of this.#bindings) {
        if (b.group)
          r.observe(b.group.members.owned.length, {
            [Attr.CONSUMER_GROUP]: this.durable,
            [Attr.STREAM]: b.stream,
          });
      }
    });
    const refresh = setInterval(() => {
      if (this.#connected) this.lag().catch(() => {});
    }, 5000);
    refresh.unref();
    // Messages waiting for their key's turn must not time out on the server meanwhile.
    const keepAlive = setInterval(
      () => {
        for (const f of this.#queue) this.#working(f);
        for (const f of this.#inFlight) if (!f.started && !f.abandoned) this.#working(f);
      },
      Math.max(500, this.#o.ackWaitMs / 3),
    );
    keepAlive.unref();
    this.#timers.push(refresh, keepAlive);
  }

  /** A message arrived (callback of consume(), synchronous): queue it and start what fits. */
  #receive(b: Binding, m: JsMsg): void {
    if (this.#state !== "running") {
      m.nak();
      return;
    }
    this.#accept(inFlightOf(b, m));
  }

  /** Queues a received delivery; handlers start in the next turn (see #receive). */
  #accept(f: InFlight): void {
    if (this.#state !== "running") return; // a group's message stays pending in its partition
    this.#queue.push(f);
    // Handlers start in the next turn, not inside nats-core's parse of the read: the pull requests
    // nats.js writes while parsing (it pulls again as its pending count drops) then go out at the
    // end of the parse, so the server prepares the next batch while this one is handled, instead
    // of after all of it. Every message of the read (or reads) starts in that one turn.
    this.#startScheduled ??= setImmediate(() => this.#startReceived());
  }

  /** Starts the messages received since the last turn, as slots allow (see #receive). */
  #startReceived(): void {
    this.#startScheduled = undefined;
    this.#receiving = true;
    try {
      this.#pump();
    } finally {
      this.#receiving = false;
    }
  }

  /**
   * Starts queued messages while handler slots are free (FIFO: arrival order). A message whose
   * handling completes synchronously (a synchronous handler that succeeded, or a plain nak) frees
   * its slot at once, without a promise and a microtask turn per message.
   */
  #pump(): void {
    while (this.#inFlight.size < this.#o.concurrency && this.#state === "running") {
      const f = this.#queue.shift();
      if (!f) return;
      this.#inFlight.add(f);
      let run: Promise<void> | undefined;
      try {
        if (f.part) {
          run = this.#lanes.run(f.key, () => this.#handleOwned(f));
        } else {
          const key = this.#o.ordering === "per-key" ? this.#partitionKey(f) : undefined;
          run =
            key === undefined
              ? this.#handle(f)
              : this.#lanes.run(key, () => this.#handle(f) ?? Promise.resolve());
        }
      } catch (err) {
        this.#unexpected(err, f);
      }
      if (run === undefined) {
        this.#release(f);
        continue;
      }
      run.then(
        () => this.#finish(f),
        (err: unknown) => {
          this.#unexpected(err, f);
          this.#finish(f);
        },
      );
    }
  }

  /**
   * Handles a message of a partition this instance owns, once its lease is fresh: a process that
   * was paused past it waits for its renewal, which tells it whether the partition is still its.
   */
  async #handleOwned(f: InFlight): Promise<void> {
    const part = f.part!;
    const members = f.binding.group!.members;
    while (!members.fresh(part.partition)) {
      if (part.lost || this.#state !== "running") return; // left pending: the next owner replays it
      await sleep(50);
    }
    if (part.lost) return;
    await this.#handle(f);
  }

  #unexpected(err: unknown, f: InFlight): void {
    this.#log.error({ err, seq: f.seq }, "unexpected error handling a message");
  }

  /** Frees the slot of `f`. */
  #release(f: InFlight): void {
    this.#inFlight.delete(f);
    if (this.#inFlight.size === 0) this.#idle?.();
  }

  #finish(f: InFlight): void {
    this.#release(f);
    this.#pump();
    this.#flushStalledBatches();
  }

  #partitionKey(f: InFlight): string | undefined {
    if (f.key !== undefined) return f.key;
    const m = f.msg;
    const fromHeader = headersOf(f).partitionKey;
    if (fromHeader) return fromHeader;
    const spec = this.#catalog.findBySubject(m.subject);
    if (!spec?.partitionKey) return undefined;
    try {
      return partitionKeyOf(spec, this.#catalog.decode(spec, headersOf(f).body ?? m.data));
    } catch {
      return undefined;
    }
  }

  /** A logger for one delivery that never reached its handler (a poison message). */
  #deliveryLog(f: InFlight): Logger {
    return lazyChild(this.#log, () => deliveryFields(f));
  }

  #attributes(subject: string): SubjectAttributes {
    let a = this.#attrs.get(subject);
    if (!a) {
      const base = messageAttributes(this.durable, subject);
      a = {
        base,
        ok: { ...base, [Attr.OUTCOME]: "ok" },
        error: { ...base, [Attr.OUTCOME]: "error" },
        spanName: `process ${subject}`,
      };
      // Wildcard consumers see open-ended subjects: keep the cache bounded.
      if (this.#attrs.size >= 1000) this.#attrs.clear();
      this.#attrs.set(subject, a);
    }
    return a;
  }

  /**
   * Handles one delivery to its outcome. Returns undefined when that happened synchronously (no
   * idempotency store, a handler that returned no promise, an ack or a nak), else its promise.
   */
  #handle(f: InFlight): Promise<void> | undefined {
    f.started = true;
    const m = f.msg;
    const delivery = f.delivery;
    const subjectAttrs = this.#attributes(m.subject);
    const attrs = subjectAttrs.base;
    if (delivery > 1) this.#tel.redeliveries.add(1, attrs);
    const hdrs = headersOf(f);

    // 1. Wire headers, type and contract: failures here never improve with a retry.
    let wire: ReceivedEventHeaders;
    try {
      wire = checkEventHeaders(hdrs);
    } catch (err) {
      const header = isJetkitError(err) ? err.details.header : undefined;
      return this.#poison(
        f,
        header === EventHeaders.TYPE ? "unknown_type" : "undecodable",
        reasonOf(err),
        this.#deliveryLog(f),
      );
    }
    const spec = this.#catalog.findByType(wire.type);
    if (!spec && this.#registered && wire.dataschema)
      return this.#handleRegistered(f, wire, wire.dataschema, hdrs.body ?? m.data);
    if (!spec || spec.subject !== m.subject) {
      const why = spec
        ? `ce-type ${wire.type} belongs to subject ${spec.subject}, not ${m.subject}`
        : `ce-type ${wire.type} is not an event of the contracts`;
      return this.#poison(f, "unknown_type", why, this.#deliveryLog(f));
    }
    const reg = this.#handlers.get(spec.type);
    if (!reg) {
      return this.#poison(
        f,
        "unknown_type",
        `durable ${this.durable} has no handler for ${spec.type}`,
        this.#deliveryLog(f),
      );
    }
    // structured mode: the event's data from the body (binary mode: the body itself)
    const data = hdrs.body ?? m.data;
    let event: unknown;
    try {
      try {
        event = decodeEvent(reg.type, data);
      } catch (err) {
        throw new JetkitError(
          ContractErrorCodes.UNDECODABLE,
          `payload is not a valid ${spec.type}: ${(err as Error).message}`,
          { cause: err, details: { type: spec.type, subject: spec.subject } },
        );
      }
      // One decode per delivery: the compiled contract checks run on the handler's ts-proto object;
      // only when they find a violation (or cannot decide) does protovalidate decode the bytes,
      // to confirm it and write the error naming field and rule.
      this.#validator?.checkEvent(spec, event, () => data);
    } catch (err) {
      const cls: FailureClass = isJetkitError(err, ContractErrorCodes.VIOLATION)
        ? "contract_violation"
        : "undecodable";
      return this.#poison(f, cls, reasonOf(err), this.#deliveryLog(f));
    }
    return this.#dispatch(f, reg, spec, event, wire, data.length);
  }

  /**
   * An event of a type the catalog does not know: decoded with the registry version its
   * `ce-dataschema` names (the lookup fetches each version once), then handled like any other.
   * A registry that cannot be reached is retried (nak); a version or type it does not hold is
   * dead-lettered as `unknown_type` with the registry's reason.
   */
  async #handleRegistered(
    f: InFlight,
    wire: ReceivedEventHeaders,
    dataschema: string,
    data: Uint8Array,
  ): Promise<void> {
    const m = f.msg;
    const handler = this.#registered;
    let found: Awaited<ReturnType<NonNullable<ResolvedOptions["registry"]>["resolve"]>>;
    try {
      found = await this.#o.registry?.resolve(dataschema);
    } catch (err) {
      if (isJetkitError(err) && err.code === "JK_REGISTRY_UNREACHABLE" && f.delivery < this.#o.maxDeliver) {
        this.#deliveryLog(f).warn(
          { err, dataschema },
          "contract registry unreachable; retrying the event later",
        );
        return this.#nak(f, nakDelay(f.delivery, this.#o.backoff), this.#attributes(m.subject).base);
      }
      return this.#poison(
        f,
        "unknown_type",
        `ce-type ${wire.type} is not an event of the contracts, and ce-dataschema ${dataschema} does not resolve: ${reasonOf(err)}`,
        this.#deliveryLog(f),
      );
    }
    if (!handler || !found || found.spec.type !== wire.type || found.spec.subject !== m.subject) {
      const why = !found
        ? `ce-type ${wire.type} is not an event of the contracts, and ce-dataschema ${dataschema} names no jetkit registry version`
        : `ce-type ${wire.type} of registry version ${found.version} belongs to subject ${found.spec.subject}, not ${m.subject}`;
      return this.#poison(f, "unknown_type", why, this.#deliveryLog(f));
    }
    let message: Message;
    try {
      message = found.catalog.decode(found.spec, data);
    } catch (err) {
      return this.#poison(
        f,
        "undecodable",
        `payload is not a valid ${wire.type} of registry version ${found.version}: ${reasonOf(err)}`,
        this.#deliveryLog(f),
      );
    }
    const event: RegisteredEvent = {
      type: wire.type,
      subject: m.subject,
      version: found.version,
      message,
      schema: found.spec.schema,
    };
    const reg: Registration = {
      type: { $type: wire.type } as EventType<unknown>,
      spec: found.spec,
      handler: handler as Handler<unknown>,
    };
    return this.#dispatch(f, reg, found.spec, event, wire, data.length);
  }

  /** Runs the handler of a decoded, checked event under its process span, to its outcome. */
  #dispatch(
    f: InFlight,
    reg: Registration,
    spec: EventSpec,
    event: unknown,
    wire: ReceivedEventHeaders,
    size: number,
  ): Promise<void> | undefined {
    const m = f.msg;
    const b = f.binding;
    const delivery = f.delivery;
    const subjectAttrs = this.#attributes(m.subject);
    const attrs = subjectAttrs.base;
    const parent = extractParent(wire, () => m.headers);
    // Messaging semconv: the process span links to the message's creation context, and (one
    // message per span, no ambient span around the handler) is also its child.
    const creation = parent === ROOT_CONTEXT ? undefined : trace.getSpanContext(parent);
    const span = this.#tel.tracer.startSpan(
      subjectAttrs.spanName,
      creation ? { kind: SpanKind.CONSUMER, links: [{ context: creation }] } : CONSUMER_SPAN,
      parent,
    );
    // Attributes cost an object per message: only build them when the span is recorded.
    if (span.isRecording()) {
      span.setAttributes({
        ...attrs,
        [Attr.OPERATION_TYPE]: "process",
        [Attr.OPERATION_NAME]: "process",
        [Attr.MESSAGE_ID]: wire.id,
        [Attr.BODY_SIZE]: size,
        ...(wire.correlationId ? { [Attr.CONVERSATION_ID]: wire.correlationId } : {}),
        [Attr.EVENT_TYPE]: spec.type,
        [Attr.STREAM]: b.stream,
        [Attr.SEQUENCE]: f.seq,
        [Attr.DELIVERY_COUNT]: delivery,
      });
    }
    // The handler runs with the process span active, so its spans and logs join the trace. A span
    // without identity (no tracer provider and no trace in the headers) changes nothing: the
    // handler then runs in the root context, as it would with it, without a context per message.
    // Either way the handler's context comes from the message alone, never from whatever context
    // the connection's socket callback happens to run in.
    // The extracted context carries what the app's propagator read besides the trace (baggage).
    const active = isSpanContextValid(span.spanContext()) ? trace.setSpan(parent, span) : parent;
    const run = new Run(f, reg, event, wire, span, active, this.#log);
    if (this.#store) return this.#handleOnce(run, this.#store);
    let outcome: Outcome | Promise<Outcome>;
    try {
      outcome = this.#attempt(run, delivery);
    } catch (err) {
      span.end();
      throw err;
    }
    if (typeof outcome === "string") {
      span.setAttribute(Attr.OUTCOME, outcome);
      span.end();
      return undefined;
    }
    return outcome.then(
      (o) => {
        span.setAttribute(Attr.OUTCOME, o);
        span.end();
      },
      (err: unknown) => {
        span.end();
        throw err;
      },
    );
  }

  /**
   * The handler of `run` under a claim on its event id, unless its effect is already recorded or
   * another process holds a live claim (then the message comes back after that claim's lease).
   */
  async #handleOnce(run: Run, store: IdempotencyStore): Promise<void> {
    const { f, wire, span } = run;
    const attrs = this.#attributes(f.msg.subject).base;
    if (f.part && !this.#mayHaveRunElsewhere(f)) return this.#handleOwnedOnce(run, store);
    try {
      let claim: Awaited<ReturnType<IdempotencyStore["claim"]>> | undefined;
      const perKey = this.#o.ordering === "per-key";
      for (let tries = 1; claim === undefined || (perKey && claim.kind === "busy"); tries++) {
        if (claim?.kind === "busy") {
          // Per-key order: another delivery of this event runs elsewhere (a group member that
          // stopped renewing its partition, or a redelivery after ack wait). A nak would let the
          // key's later events overtake it: hold the key until that claim completes or lapses.
          const delay = Math.min(claim.retryInMs + 100, store.leaseMs);
          run.log.info(
            { owner: claim.owner, retry_in_ms: delay },
            "event claimed by another delivery that is still running; holding its key until that claim ends",
          );
          claim = undefined;
          if (!(await this.#holdFor(f, delay))) {
            this.#nak(f, 0, attrs);
            return;
          }
        }
        try {
          claim = await this.#claim(run, store);
        } catch (err) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: "idempotency store unavailable" });
          const delay = nakDelay(Math.max(f.delivery, tries), this.#o.backoff);
          if (this.#o.ordering === "per-key" && this.#state === "running") {
            // A nak would let the key's later events overtake this one: hold the key instead.
            run.log.warn(
              { err, attempt: tries, delay_ms: delay },
              "idempotency store unavailable; retrying in place",
            );
            if (await this.#holdFor(f, delay)) continue;
          } else run.log.warn({ err }, "idempotency store unavailable; retrying the message later");
          this.#nak(f, this.#state === "running" ? delay : 0, attrs);
          return;
        }
      }
      // 2. Effect already recorded: ack without running the handler.
      if (claim.kind === "done") {
        run.log.debug("effect already recorded; acked without running the handler");
        span.setAttribute(Attr.DUPLICATE, true);
        this.#tel.duplicates.add(1, attrs);
        this.#ack(f, attrs);
        return;
      }
      if (claim.kind === "busy") {
        // Another delivery of this event is running (here or in another process): never run it
        // twice at once. It comes back when that claim's lease would have lapsed.
        const delay = Math.min(claim.retryInMs + 100, this.#o.ackWaitMs);
        run.log.info(
          { owner: claim.owner, retry_in_ms: delay },
          "event claimed by another delivery that is still running; retrying after its lease",
        );
        span.setAttribute(Attr.OUTCOME, "busy");
        this.#nak(f, delay, attrs);
        return;
      }
      run.claim = claim.revision;
      this.#claimedHere.add(wire.id);
      run.renewal = setInterval(() => void this.#renew(run, store), Math.max(100, store.leaseMs / 3));
      try {
        const outcome = await this.#attempt(run, f.delivery);
        span.setAttribute(Attr.OUTCOME, outcome);
      } finally {
        clearInterval(run.renewal);
        this.#claimedHere.delete(wire.id);
      }
    } finally {
      span.end();
    }
  }

  /**
   * True when another process may have run a group message: its partition was taken over from an
   * owner that stopped renewing it, and the message was stored before that owner's fence (see
   * PartitionGroup). Every other message of an owned partition can have run nowhere else: the
   * owner reads its partitions alone and its predecessor handed over a drained checkpoint.
   */
  #mayHaveRunElsewhere(f: InFlight): boolean {
    const until = f.part?.replayUntil;
    return until !== undefined && f.msg.info.timestampNanos / 1e6 <= until;
  }

  /**
   * A group message no other process can have run: the handler without a claim (the partition's
   * lease excludes other runners), then the effect record, which a later takeover's replay reads.
   */
  async #handleOwnedOnce(run: Run, store: IdempotencyStore): Promise<void> {
    const { span } = run;
    try {
      if (store.recordedLately(run.wire.id)) {
        this.#ack(run.f, this.#attributes(run.f.msg.subject).base);
        return;
      }
      const outcome = await this.#attempt(run, run.f.delivery);
      span.setAttribute(Attr.OUTCOME, outcome);
    } finally {
      span.end();
    }
  }

  /**
   * Claims `run`'s event id. A record this process wrote lately is known without asking the
   * store; so is a copy of the event whose handler runs here now (busy).
   */
  async #claim(run: Run, store: IdempotencyStore): Promise<Awaited<ReturnType<IdempotencyStore["claim"]>>> {
    const id = run.wire.id;
    if (store.recordedLately(id)) return { kind: "done" };
    if (this.#claimedHere.has(id)) {
      return { kind: "busy", owner: store.owner, retryInMs: Math.min(250 * run.f.delivery, store.leaseMs) };
    }
    this.#claimedHere.add(id); // reserved while the claim is written
    try {
      return await store.claim(id);
    } finally {
      this.#claimedHere.delete(id);
    }
  }

  /** Extends `run`'s claim (and the message's ack wait with it). */
  async #renew(run: Run, store: IdempotencyStore): Promise<void> {
    const revision = run.claim;
    if (revision === undefined || run.claimLost) return;
    try {
      run.claim = await store.renew(run.wire.id, revision);
      this.#working(run.f);
    } catch (err) {
      if (err instanceof ClaimLostError) {
        run.claimLost = true;
        run.log.error(
          { err },
          "claim on the event lost while its handler runs: another process took it over",
        );
      } else run.log.warn({ err }, "could not renew the claim on the event; retrying");
    }
  }

  /** Gives up `run`'s claim after a failed handler, so the retry can run wherever it lands. */
  async #releaseClaim(run: Run): Promise<void> {
    const revision = run.claim;
    if (!this.#store || revision === undefined || run.claimLost) return;
    clearInterval(run.renewal);
    run.claim = undefined;
    try {
      await this.#store.release(run.wire.id, revision);
    } catch (err) {
      // It lapses after its lease; the retry waits for that.
      run.log.warn({ err }, "could not release the claim on the event; it lapses after its lease");
    }
  }

  /**
   * 3. Runs the handler for delivery `attempt` (above the delivery count when per-key ordering
   * retries in place). The outcome is synchronous when the handler returned no promise and the
   * outcome needs no round trip (an ack or a nak without the idempotency store).
   */
  #attempt(run: Run, attempt: number): Outcome | Promise<Outcome> {
    const ctx = new DeliveryContext(run, attempt, this.#shutdown.signal);
    // Timed only when the duration is recorded somewhere (a meter provider is installed).
    const t0 = this.#tel.timed ? performance.now() : 0;
    let result: Promise<void> | void;
    try {
      const batch = run.reg.batch;
      if (batch) {
        const f = run.f;
        f.inBatch = true;
        result = batch.add(run.event, ctx, run).finally(() => {
          f.inBatch = false;
        });
        this.#flushStalledBatches();
      } else result = context.with(run.active, run.reg.handler, undefined, run.event, ctx);
    } catch (err) {
      return this.#afterRun(run, attempt, t0, true, err);
    }
    // A synchronous handler is not awaited: no extra turn per message.
    if (!result) return this.#afterRun(run, attempt, t0, false, undefined);
    return Promise.resolve(result).then(
      () => this.#afterRun(run, attempt, t0, false, undefined),
      (err: unknown) => this.#afterRun(run, attempt, t0, true, err),
    );
  }

  /** Acts on the handler's result: ack, nak, dead-letter, or (per-key) retry in place. */
  #afterRun(
    run: Run,
    attempt: number,
    t0: number,
    failed: boolean,
    error: unknown,
  ): Outcome | Promise<Outcome> {
    const { f, span } = run;
    const b = f.binding;
    const attrs = this.#attributes(f.msg.subject);
    if (this.#tel.timed) {
      this.#tel.duration.record((performance.now() - t0) / 1000, failed ? attrs.error : attrs.ok);
    }
    if (f.abandoned) return "abandoned";
    if (!failed) {
      if (this.#store) return this.#recordAndAck(run, this.#store);
      if (this.#firstFailure.size > 0) this.#firstFailure.delete(`${b.stream}:${f.seq}`);
      this.#ack(f, attrs.base);
      return "ack";
    }
    span.recordException(error instanceof Error ? error : new Error(String(error)));
    span.setStatus({ code: SpanStatusCode.ERROR, message: reasonOf(error) });
    span.setAttribute(Attr.ERROR_TYPE, errorType(error));
    const firstKey = `${b.stream}:${f.seq}`;
    if (!this.#firstFailure.has(firstKey)) {
      if (this.#firstFailure.size >= 10_000)
        this.#firstFailure.delete(this.#firstFailure.keys().next().value!);
      this.#firstFailure.set(firstKey, new Date());
    }
    const permanent = isPermanentError(error);
    if (permanent || attempt >= this.#o.maxDeliver) {
      run.log.warn(
        { err: error },
        permanent ? "handler failed permanently" : "handler failed on the last delivery",
      );
      return this.#releaseClaim(run)
        .then(() =>
          this.#deadLetterAndTerm(
            f,
            permanent ? "handler_permanent" : "handler_exhausted",
            reasonOf(error),
            attempt,
            run.log,
          ),
        )
        .then(() => "dead" as const);
    }
    const delay = nakDelay(attempt, this.#o.backoff);
    if (this.#state !== "running") {
      return this.#releaseClaim(run).then(() => {
        this.#nak(f, 0, attrs.base);
        return "nak" as const;
      });
    }
    if (this.#o.ordering !== "per-key") {
      run.log.info({ err: error, delay_ms: delay }, "handler failed; nak'd for a later retry");
      if (run.claim !== undefined) {
        return this.#releaseClaim(run).then(() => {
          this.#nak(f, delay, attrs.base);
          return "nak" as const;
        });
      }
      this.#nak(f, delay, attrs.base);
      return "nak";
    }
    run.log.info(
      { err: error, delay_ms: delay },
      "handler failed; retrying in place to keep the key's order",
    );
    return this.#holdFor(f, delay).then(async (held) => {
      if (held) return this.#attempt(run, attempt + 1);
      await this.#releaseClaim(run);
      this.#nak(f, 0, attrs.base);
      return "nak" as const;
    });
  }

  /**
   * Records the effect in the idempotency store, then acks. The message is never acked before its
   * record is written: a lost record could let a redelivery run the handler again. A failed write
   * is retried (the message kept alive meanwhile) for as long as this process runs; if it stops
   * first, the message is left unacked (its claim lapses and the event is redelivered: the one
   * window where an effect can repeat, see the README).
   */
  async #recordAndAck(run: Run, store: IdempotencyStore): Promise<Outcome> {
    const { f, wire } = run;
    const b = f.binding;
    for (let attempt = 1; ; attempt++) {
      if (run.claimLost) {
        run.log.error(
          "the handler ran but another process took the event over meanwhile (this one was paused or cut off longer than the lease): not acked; the effect may have run twice",
        );
        return "abandoned";
      }
      try {
        if (run.claim === undefined && f.part) await store.record(wire.id, b.stream, f.seq);
        else await store.complete(wire.id, run.claim ?? 0, b.stream, f.seq);
        break;
      } catch (err) {
        if (err instanceof ClaimLostError) {
          run.claimLost = true;
          continue;
        }
        if (this.#state === "stopped") {
          run.log.error({ err }, "could not record the effect before the consumer stopped: left unacked");
          return "abandoned";
        }
        run.log.warn(
          { err, attempt },
          "could not record the effect in the idempotency store; retrying (not acked)",
        );
        this.#working(f);
        await sleep(Math.min(2000, 50 * 2 ** Math.min(attempt, 6)));
      }
    }
    run.claim = undefined;
    if (this.#firstFailure.size > 0) this.#firstFailure.delete(`${b.stream}:${f.seq}`);
    this.#ack(f, this.#attributes(f.msg.subject).base);
    return "ack";
  }

  /** Waits `ms` while keeping the message alive on the server; false when the consumer stops meanwhile. */
  /**
   * Waits `ms` while keeping the message alive on the server; false when the consumer stops
   * meanwhile. A group's message is held only while its partition is this process's: false once
   * lost, and the wait goes on until the lease is fresh again, so an in-place retry never runs
   * beside the new owner's replay.
   */
  async #holdFor(f: InFlight, ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    const step = Math.max(200, Math.min(this.#o.ackWaitMs / 3, 5000));
    while (Date.now() < end) {
      if (this.#state !== "running" || f.part?.lost) return false;
      await sleep(Math.min(step, end - Date.now()));
      this.#working(f);
    }
    if (f.part) {
      const members = f.binding.group!.members;
      while (!members.fresh(f.part.partition)) {
        if (this.#state !== "running" || f.part.lost) return false;
        await sleep(50);
      }
    }
    return this.#state === "running";
  }

  async #poison(f: InFlight, cls: FailureClass, reason: string, log: Logger): Promise<void> {
    log.warn({ failure_class: cls, reason }, "poison message; dead-lettering it without retries");
    await this.#deadLetterAndTerm(f, cls, reason, f.delivery, log);
  }

  async #deadLetterAndTerm(
    f: InFlight,
    cls: FailureClass,
    reason: string,
    deliveries: number,
    log: Logger,
  ): Promise<void> {
    const m = f.msg;
    const b = f.binding;
    const now = new Date();
    const key = `${b.stream}:${f.seq}`;
    const attrs = messageAttributes(this.durable, m.subject);
    try {
      await this.#storeDeadLetter({
        stream: b.stream,
        seq: f.seq,
        subject: m.subject,
        consumer: this.durable,
        deliveries,
        failureClass: cls,
        reason,
        firstFailure: this.#firstFailure.get(key) ?? now,
        lastFailure: now,
        headers: m.headers,
        data: m.data,
      });
      this.#firstFailure.delete(key);
      if (f.part) f.binding.group!.reader.finish(f.part, f.seq);
      else m.term(`jetkit: dead-lettered (${cls})`);
      log.warn({ failure_class: cls }, "message dead-lettered");
    } catch (err) {
      // Not stored in the DLQ: keep the message; if this was its last delivery, the
      // MAX_DELIVERIES advisory brings it back to the DLQ path.
      const delay = nakDelay(deliveries, this.#o.backoff);
      if (this.#o.ordering === "per-key" && (await this.#holdFor(f, delay))) {
        // Per-key order: a nak would let the key's later events overtake it; retry in place.
        log.error({ err, retry_in_ms: delay }, "could not dead-letter the message; retrying in place");
        return this.#deadLetterAndTerm(f, cls, reason, deliveries, log);
      }
      log.error({ err }, "could not dead-letter the message; nak'd");
      this.#nak(f, delay, attrs);
    }
  }

  async #storeDeadLetter(dl: DeadLetter): Promise<void> {
    const ack = await publishDeadLetter(this.#js, this.#o.deadLetter.stream, dl);
    if (!ack.duplicate) {
      this.#tel.deadLetters.add(1, {
        ...messageAttributes(this.durable, dl.subject),
        "jetkit.failure_class": dl.failureClass,
      });
    }
  }

  /** Keeps a delivery alive on the server (a group's messages have no server-side ack wait). */
  #working(f: InFlight): void {
    if (!f.part) f.msg.working();
  }

  #ack(f: InFlight, attrs: Attributes): void {
    if (f.part) {
      f.binding.group!.reader.finish(f.part, f.seq);
      this.#tel.acks.add(1, attrs);
      return;
    }
    // In the turn that starts received messages, nats-core sends whatever is written in one write
    // at its end: batching those acks would cost a second write.
    if (this.#receiving) this.#acks.ackNow(f.msg);
    else this.#acks.ack(f.msg);
    this.#tel.acks.add(1, attrs);
  }

  #nak(f: InFlight, delayMs: number, attrs: Attributes): void {
    // A group's message is only ever nak'd while the consumer stops: it stays pending in its
    // partition, whose next owner replays it.
    if (!f.part) f.msg.nak(delayMs);
    this.#tel.naks.add(1, attrs);
  }
}
