import {
  type Catalog,
  ContractValidator,
  type EventHeaderInput,
  type EventSpec,
  type EventType,
  eventHeaders,
  getCatalog,
  JetkitError,
  partitionKeyOf,
  registryDataschema,
  subjectMatches,
  uuidv7,
} from "@jetkit/contracts";
import { ProtoWriter } from "@jetkit/contracts/proto";
import { type PubAck, PubHeaders } from "@nats-io/jetstream";
import { connect, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { type Context, SpanStatusCode } from "@opentelemetry/api";
import { type Logger, pino } from "pino";
import { AckInbox } from "./acks.js";
import {
  type AtomicAck,
  type AtomicEvent,
  checkAtomicBatch,
  DEFAULT_MAX_ATOMIC_BATCH,
  sendAtomic,
  type Transaction,
} from "./atomic.js";
import type { BatchContext, BatchMessage } from "./batch.js";
import { serverAtLeast } from "./batch.js";
import { type BreakerChange, type BreakerState, CircuitBreaker } from "./breaker.js";
import {
  brokerAnswered,
  classify,
  closedError,
  failedByDisconnect,
  inFlightWhenClosed,
  isClosedConnection,
  ProducerErrorCodes,
  toProducerError,
  wrongStream,
} from "./errors.js";
import { type FastFallback, type FastRead, fastPublish } from "./fast.js";
import {
  checkExtraHeaders,
  type EncodedHeaders,
  isoNow,
  structuredMessage,
  toMsgHdrs,
  withPropagated,
} from "./headers.js";
import { InFlightWindow } from "./in-flight.js";
import {
  type BreakerOptions,
  DEFAULT_BREAKER,
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_RETRY,
  type ProducerOptions,
  type RetryOptions,
} from "./options.js";
import { pipelinedEach } from "./pipelined.js";
import { backoffDelay, sleep } from "./retry.js";
import { Attr, ProducerTelemetry } from "./telemetry.js";

/** How long publishMany publishes one by one on a stream whose server refused a fast-ingest batch. */
const FAST_RECHECK_MS = 60_000;

/** Optimistic-concurrency expectations checked by the stream before it stores the event. */
export interface Expectations {
  /** The stream's last sequence must be this. */
  lastSequence?: number;
  /** The last sequence of the event's subject must be this (0: no message on the subject yet). */
  lastSubjectSequence?: number;
  /** The stream's last message id must be this. */
  lastMsgId?: string;
}

/** Per-event options of a publish. All optional. */
export interface PublishOptions {
  /** `Nats-Msg-Id` and `ce-id`. Reuse it to retry an event safely (the stream drops duplicates). Default: a new UUIDv7. */
  msgId?: string;
  /** `ce-correlationid`. Default: the event's id. */
  correlationId?: string;
  /** `ce-causationid`: the id of the event that caused this one. */
  causationId?: string;
  /** `ce-partitionkey`. Default: the contract's partition key field of the event. */
  key?: string;
  /** `ce-time`. Default: now. */
  time?: Date;
  /**
   * The OpenTelemetry context the publish span is a child of. Default: the active context. For
   * a trace that arrived from elsewhere without a context manager to carry it (a gateway
   * forwarding a client's traceparent).
   */
  parentContext?: Context;
  /** Checked by the stream; a mismatch fails with JK_PRODUCER_EXPECTATION_FAILED (not retried). */
  expect?: Expectations;
  /**
   * Lifetime of the event in the stream, in ms (whole seconds, at least 1000): the server removes
   * it after that, delivered or not (`Nats-TTL`). Default: the contract's `ttl` for the event.
   * Needs `allow_msg_ttl` on the stream, else JK_PRODUCER_UNSUPPORTED.
   */
  ttlMs?: number;
  /**
   * Deliver the event at this time instead of now (a message schedule, nats-server 2.12+): it
   * waits in the stream on `<subject>.scheduled.<msgId>` and is published to its subject then;
   * consumers see it at that time, not before. The ack is the schedule's. Cancel it with
   * {@link Producer.cancelScheduled}. Needs `allow_msg_schedules`, else JK_PRODUCER_UNSUPPORTED.
   */
  deliverAt?: Date;
  /** Like `deliverAt`, this many ms from now. */
  delayMs?: number;
}

/** How far in the past `deliverAt` may lie (a delay of 0, clocks a little apart): delivered at once. */
const SCHEDULE_PAST_TOLERANCE_MS = 1000;

/** An already-encoded event for {@link Producer.publishEncoded}: name it by `type` or by `subject`. */
export interface EncodedEvent extends PublishOptions {
  /** Fully-qualified message name, e.g. `shop.order.v1.OrderFulfillmentCompleted`. */
  type?: string;
  /** The event's subject, e.g. `order.fulfillment.completed`. */
  subject?: string;
  /** Protobuf binary of the event message. */
  payload: Uint8Array;
  /** Extra headers (not the CloudEvents/NATS ones, which jetkit writes). */
  headers?: Record<string, string>;
}

/** What JetStream acknowledged. */
export interface PublishAck {
  readonly stream: string;
  readonly seq: number;
  /** True when the stream already had this msgId (within its duplicate window) and dropped the copy. */
  readonly duplicate: boolean;
  readonly msgId: string;
  readonly subject: string;
  /** Attempts it took (1 unless it was retried; for a fast-ingest batch, the batches it took). */
  readonly attempts: number;
  /**
   * Set when publishMany sent the event in a fast-ingest batch: the batch's id and the event's
   * place in it. Such an ack says the event is in the stream (stored now, or already there under
   * its msgId); the stream reports no per-event sequence (`seq` is 0) and drops duplicates
   * without saying which (`duplicate` is false).
   */
  readonly batch?: { readonly id: string; readonly seq: number };
}

/** Options of {@link Producer.publishMany} / {@link Producer.publishEach}. */
export interface PublishManyOptions<T> {
  /** Most events of this call unacknowledged at once (at most the producer's maxInFlight). Default: maxInFlight. */
  window?: number;
  /** Per-event publish options (e.g. a stable msgId so a rerun of the batch is deduplicated). */
  options?: (event: T, index: number) => PublishOptions;
  /**
   * Use the stream's fast-ingest batch publish (nats-server 2.14+) when its contract declares
   * `allow_batched`: acks every few events instead of one per event, so each event's ack has no
   * stream sequence (see {@link PublishAck.batch}). `false`: one publish per event, each with its
   * own sequence and duplicate flag. Default: true.
   */
  fast?: boolean;
}

/** Counters of a producer, for tests, health checks and dashboards. */
export interface ProducerStats {
  /** Publishes admitted and not yet settled. */
  inFlight: number;
  /** Most publishes ever in flight at once (never above maxInFlight). */
  inFlightHighWater: number;
  maxInFlight: number;
  /** Callers waiting for a slot (backpressure). */
  waiting: number;
  published: number;
  duplicates: number;
  retries: number;
  failures: number;
  breaker: BreakerState;
}

interface Prepared {
  spec: EventSpec;
  payload: Uint8Array;
  key: string | undefined;
  extra: [string, string][];
}

interface AtomicItem {
  p: Prepared;
  opts: PublishOptions;
}

/** A connected producer. Create one per service with {@link createProducer}; share it. */
export class Producer {
  readonly name: string;
  readonly source: string;
  readonly catalog: Catalog;
  readonly #nc: NatsConnection;
  readonly #acks: AckInbox;
  readonly #log: Logger;
  readonly #validator: ContractValidator | undefined;
  readonly #retry: RetryOptions;
  readonly #window: InFlightWindow;
  readonly #breaker: CircuitBreaker;
  readonly #telemetry: ProducerTelemetry;
  readonly #keyFields = new Map<string, string | undefined>();
  readonly #structured: boolean;
  /** The ce-dataschema of an event type, when a registry version is configured. */
  readonly #dataschema: ((type: string) => string) | undefined;
  #writer: ProtoWriter | undefined;
  #closing: Promise<void> | undefined;
  #stats = { published: 0, duplicates: 0, retries: 0, failures: 0 };
  #serverProbe: { at: number; result: Promise<boolean> } | undefined;
  readonly #maxAtomicBatch: number;
  readonly #inboxPrefix: string | undefined;
  #batchCtx: BatchContext | undefined;
  /** Streams whose server refused a fast-ingest batch (allow_batched off), until when. */
  readonly #fastOff = new Map<string, number>();

  /** @internal use {@link createProducer} */
  constructor(nc: NatsConnection, opts: ProducerOptions, log: Logger) {
    this.name = opts.name;
    this.source = opts.source ?? `/jetkit/${opts.name}`;
    this.catalog = opts.catalog ?? getCatalog();
    this.#nc = nc;
    this.#acks = new AckInbox(nc, opts.connection?.inboxPrefix);
    this.#inboxPrefix = opts.connection?.inboxPrefix;
    this.#maxAtomicBatch = opts.maxAtomicBatch ?? DEFAULT_MAX_ATOMIC_BATCH;
    this.#log = log;
    this.#validator = opts.validate === false ? undefined : new ContractValidator(this.catalog);
    this.#structured = opts.contentMode === "structured";
    const version = opts.registryVersion;
    this.#dataschema = version === undefined ? undefined : (type) => registryDataschema(version, type);
    this.#retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.#window = new InFlightWindow(opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);
    const breaker: BreakerOptions = { ...DEFAULT_BREAKER, ...opts.breaker };
    this.#breaker = new CircuitBreaker(breaker, (change) => this.#breakerChanged(change, opts));
    this.#telemetry = new ProducerTelemetry(opts.name, () => ({
      inFlight: this.#window.size,
      breaker: this.#breaker.state,
    }));
    void this.#watchConnection();
  }

  /** Current circuit breaker state. */
  get breakerState(): BreakerState {
    return this.#breaker.state;
  }

  /** The underlying NATS connection (for health checks; do not close it yourself). */
  get connection(): NatsConnection {
    return this.#nc;
  }

  /** Counters since the producer was created. */
  stats(): ProducerStats {
    return {
      inFlight: this.#window.size,
      inFlightHighWater: this.#window.highWater,
      maxInFlight: this.#window.limit,
      waiting: this.#window.waiting,
      ...this.#stats,
      breaker: this.#breaker.state,
    };
  }

  /**
   * Publishes one event of the contract `Type` (the ts-proto generated const) and resolves with
   * its JetStream ack. The event is encoded and validated first: nothing is sent if it breaks
   * its contract (JK_CONTRACT_VIOLATION names the field and rule).
   */
  publish<T>(Type: EventType<T>, event: T, opts: PublishOptions = {}): Promise<PublishAck> {
    let prepared: Prepared;
    try {
      prepared = this.#prepare(Type, event, opts);
    } catch (err) {
      return Promise.reject(this.#refused(err, this.catalog.findByType(Type.$type)?.subject));
    }
    return this.#send(prepared, opts);
  }

  /** Encodes and validates a typed event (throws the contract's error; nothing is sent). */
  #prepare<T>(Type: EventType<T>, event: T, opts: PublishOptions): Prepared {
    const spec = this.catalog.byType(Type.$type);
    const payload = this.#encode(Type, event);
    // the ts-proto object is checked as is (compiled rules); bytes are decoded only to write an error
    if (this.#validator) this.#validator.checkEvent(spec, event, () => payload);
    return { spec, payload, key: opts.key ?? this.#keyOf(spec, event), extra: [] };
  }

  /**
   * Publishes `events` as one atomic batch (nats-server 2.12.1+, `allow_atomic` on the stream):
   * the stream stores all of them, at consecutive sequences, or none; one outcome for the whole
   * batch. All events must belong to one stream, at most `maxAtomicBatch` (1000, the server's
   * default limit) of them. Every event keeps its own msgId, so a rerun is refused whole instead
   * of storing anything twice. Failures: JK_PRODUCER_BATCH_EMPTY, _BATCH_STREAMS, _BATCH_TOO_LARGE,
   * _UNSUPPORTED (nothing sent), a contract error (nothing sent), _EXPECTATION_FAILED or
   * _REJECTED (nothing stored), _OUTCOME_UNKNOWN (stored whole or not at all, not known which).
   */
  publishAtomic(events: readonly AtomicEvent[]): Promise<AtomicAck> {
    const items: AtomicItem[] = [];
    for (const e of events) {
      const opts = e.opts ?? {};
      try {
        items.push({ p: this.#prepare(e.type, e.event, opts), opts });
      } catch (err) {
        return Promise.reject(this.#refused(err, this.catalog.findByType(e.type.$type)?.subject));
      }
    }
    return this.#publishAtomic(items);
  }

  /**
   * A builder for an atomic batch: `producer.transaction().add(A, a).add(B, b).commit()` is
   * `publishAtomic([{ type: A, event: a }, { type: B, event: b }])`, with each event checked
   * against its type when added.
   */
  transaction(): Transaction {
    const items: AtomicItem[] = [];
    const tx: Transaction = {
      add: <T>(Type: EventType<T>, event: T, opts: PublishOptions = {}) => {
        try {
          items.push({ p: this.#prepare(Type, event, opts), opts });
        } catch (err) {
          throw this.#refused(err, this.catalog.findByType(Type.$type)?.subject);
        }
        return tx;
      },
      get size() {
        return items.length;
      },
      commit: () => this.#publishAtomic(items.splice(0)),
    };
    return tx;
  }

  async #publishAtomic(items: AtomicItem[]): Promise<AtomicAck> {
    if (this.#closing) throw closedError();
    const head = items[0]?.p.spec;
    const subject = head?.subject ?? "unknown";
    const stream = head?.stream ?? "unknown";
    let msgs: BatchMessage[] = [];
    let admitted = false;
    const started = performance.now();
    const { span, carrier } = this.#telemetry.startSend(
      subject,
      items[0]?.opts.msgId ?? "",
      items.reduce((n, i) => n + i.p.payload.length, 0),
      items[0]?.opts.correlationId ?? "",
      head?.type ?? "unknown",
    );
    try {
      msgs = this.#atomicMessages(items, carrier);
      const waited = this.#window.acquire();
      admitted = true;
      if (waited) await waited;
      const ack = await sendAtomic(this.#batchContext(), msgs);
      const seconds = (performance.now() - started) / 1000;
      this.#stats.published += ack.count;
      if (ack.duplicate) this.#stats.duplicates += ack.count;
      for (const m of msgs) this.#telemetry.published(m.spec.subject, seconds);
      if (span.isRecording()) {
        span.setAttributes({
          [Attr.STREAM]: stream,
          [Attr.SEQUENCE]: ack.lastSeq,
          [Attr.DUPLICATE]: ack.duplicate,
          [Attr.ATTEMPTS]: ack.attempts,
          "messaging.batch.message_count": ack.count,
        });
      }
      this.#log.debug(
        { stream, batch_id: ack.batchId, count: ack.count, seq: ack.lastSeq, duplicate: ack.duplicate },
        "atomic batch published",
      );
      return ack;
    } catch (err) {
      const e =
        err instanceof JetkitError
          ? err
          : toProducerError(err, { subject, stream, msgId: msgs[0]?.msgId ?? "" });
      this.#stats.failures++;
      this.#telemetry.failed(subject, e.code, (performance.now() - started) / 1000);
      span.setAttribute(Attr.ERROR_TYPE, e.code);
      span.recordException(e);
      span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
      this.#log.error(
        { stream, count: items.length, err: { code: e.code, message: e.message, ...e.details } },
        "atomic batch failed",
      );
      throw e;
    } finally {
      span.end();
      if (admitted) this.#window.release();
    }
  }

  /**
   * The messages of an atomic batch, after every check that needs no server: not empty, one
   * stream that allows atomic batches, within the size limit, distinct msgIds, supported
   * expectations, each event within the size limits. Throws (nothing sent) otherwise.
   */
  #atomicMessages(
    items: AtomicItem[],
    carrier: { traceparent?: string; tracestate?: string },
  ): BatchMessage[] {
    checkAtomicBatch(
      items.map((i) => ({ spec: i.p.spec, opts: i.opts })),
      this.#maxAtomicBatch,
      (stream) => this.catalog.stream(stream)?.allowAtomic === true,
      this.#nc,
    );
    const stream = items[0]!.p.spec.stream;
    return items.map(({ p, opts }) => {
      const msgId = opts.msgId ?? uuidv7();
      const timing = this.#timing(p, opts, msgId);
      const headers = this.#headers(p, opts, msgId, carrier, timing.headers);
      this.#checkSize({ subject: p.spec.subject, stream, msgId }, p.payload.length, headers.wireBytes + 96);
      return { spec: p.spec, subject: timing.subject, payload: p.payload, headers, msgId };
    });
  }

  /** The CloudEvents attributes of one event (trace context from `carrier`). */
  #event(
    p: Prepared,
    opts: PublishOptions,
    msgId: string,
    carrier: { traceparent?: string; tracestate?: string },
  ): EventHeaderInput {
    return {
      id: msgId,
      type: p.spec.type,
      source: this.source,
      time: opts.time ?? isoNow(),
      partitionKey: p.key,
      correlationId: opts.correlationId ?? msgId,
      causationId: opts.causationId,
      traceparent: carrier.traceparent,
      tracestate: carrier.tracestate,
      dataschema: this.#dataschema?.(p.spec.type),
    };
  }

  /**
   * The binary-mode header list of one event: CloudEvents attributes, the headers the registered
   * propagator injected and the caller's extra ones (before Nats-Msg-Id), then TTL/schedule.
   */
  #headerList(
    p: Prepared,
    opts: PublishOptions,
    msgId: string,
    carrier: { traceparent?: string; tracestate?: string; headers?: [string, string][] },
    timing: [string, string][],
  ): [string, string][] {
    const list = eventHeaders(this.#event(p, opts, msgId, carrier));
    const extra = withPropagated(carrier.headers, p.extra);
    if (extra.length > 0) list.splice(list.length - 1, 0, ...extra);
    if (timing.length > 0) list.push(...timing);
    return list;
  }

  /** The binary-mode header block of one event of a batch (atomic or fast: binary mode only). */
  #headers(
    p: Prepared,
    opts: PublishOptions,
    msgId: string,
    carrier: { traceparent?: string; tracestate?: string; headers?: [string, string][] },
    timing: [string, string][],
  ): EncodedHeaders {
    const headers = toMsgHdrs(this.#headerList(p, opts, msgId, carrier, timing));
    if (opts.expect) setExpectations(headers, opts.expect);
    return headers;
  }

  #batchContext(): BatchContext {
    this.#batchCtx ??= {
      nc: this.#nc,
      acks: this.#acks,
      log: this.#log,
      retry: this.#retry,
      breaker: this.#breaker,
      inboxPrefix: this.#inboxPrefix,
      judge: (err, probe) => this.#judgeBroker(err, probe),
      closing: () => this.#closing !== undefined,
      duplicateWindowMs: (stream) => this.catalog.stream(stream)?.duplicateWindowMs,
    };
    return this.#batchCtx;
  }

  /**
   * Publishes an already-encoded event (e.g. from the gateway or a replay tool), named by type or
   * subject. It is decoded and validated like any other event before anything is sent.
   */
  publishEncoded(input: EncodedEvent): Promise<PublishAck> {
    let prepared: Prepared;
    try {
      prepared = this.#prepareEncoded(input);
    } catch (err) {
      const spec = input.type ? this.catalog.findByType(input.type) : undefined;
      return Promise.reject(this.#refused(err, spec?.subject ?? input.subject));
    }
    return this.#send(prepared, input);
  }

  /** {@link publishAtomic} for already-encoded events (e.g. `jetkit publish --atomic`), each checked like {@link publishEncoded}. */
  publishAtomicEncoded(events: readonly EncodedEvent[]): Promise<AtomicAck> {
    const items: AtomicItem[] = [];
    for (const input of events) {
      try {
        items.push({ p: this.#prepareEncoded(input), opts: input });
      } catch (err) {
        const spec = input.type ? this.catalog.findByType(input.type) : undefined;
        return Promise.reject(this.#refused(err, spec?.subject ?? input.subject));
      }
    }
    return this.#publishAtomic(items);
  }

  #prepareEncoded(input: EncodedEvent): Prepared {
    const spec = this.#specOf(input);
    const message = this.#validator
      ? this.#validator.check(spec, input.payload)
      : spec.partitionKey && input.key === undefined
        ? this.catalog.decode(spec, input.payload)
        : undefined;
    const extra = input.headers ? checkExtraHeaders(input.headers) : [];
    const key = input.key ?? (message ? partitionKeyOf(spec, message) : undefined);
    return { spec, payload: input.payload, key, extra };
  }

  /**
   * Publishes `events` in order, pipelined: at most `window` are unacknowledged at once, and the
   * next event is only taken from `events` when one is acknowledged (an async iterable is read
   * lazily, so memory stays bounded). Resolves with the acks in the order of `events`.
   */
  async publishMany<T>(
    Type: EventType<T>,
    events: Iterable<T> | AsyncIterable<T>,
    opts: PublishManyOptions<T> = {},
  ): Promise<PublishAck[]> {
    const acks: PublishAck[] = [];
    for await (const chunk of this.#chunks(Type, events, opts)) for (const ack of chunk) acks.push(ack);
    return acks;
  }

  /**
   * Like {@link publishMany} but yields each ack in order as soon as it (and every earlier one)
   * is in, for unbounded sources. If an event fails, the events before it are yielded, the ones
   * already in flight are awaited, and it throws JK_PRODUCER_BATCH_FAILED with the index.
   */
  async *publishEach<T>(
    Type: EventType<T>,
    events: Iterable<T> | AsyncIterable<T>,
    opts: PublishManyOptions<T> = {},
  ): AsyncGenerator<PublishAck, void, undefined> {
    for await (const chunk of this.#chunks(Type, events, opts)) for (const ack of chunk) yield ack;
  }

  /** publishEach's acks in order, as many at a time as came in together. */
  async *#chunks<T>(
    Type: EventType<T>,
    events: Iterable<T> | AsyncIterable<T>,
    opts: PublishManyOptions<T>,
  ): AsyncGenerator<PublishAck[], void, undefined> {
    const window = Math.max(1, Math.min(opts.window ?? this.#window.limit, this.#window.limit));
    const it = Symbol.asyncIterator in events ? events[Symbol.asyncIterator]() : events[Symbol.iterator]();
    let exhausted = false;
    const seen = (r: IteratorResult<T>) => {
      if (r.done) exhausted = true;
      return r;
    };
    // a synchronous source's events are taken without a promise each
    const next = (): IteratorResult<T> | Promise<IteratorResult<T>> => {
      const r = it.next();
      return r instanceof Promise ? r.then(seen) : seen(r);
    };
    try {
      const spec = this.catalog.findByType(Type.$type);
      if (spec && opts.fast !== false && this.#fastAllowed(spec.stream)) {
        const end = yield* this.#fastEach(Type, spec, next, window, opts);
        if (!end) return;
        // the stream does not take fast batches: what it gave back, then the rest, one by one
        this.#fastOff.set(spec.stream, Date.now() + FAST_RECHECK_MS);
        const back = end.fallback.map((f) => f.raw as T);
        const first = end.fallback[0]?.index ?? 0;
        const resumed = (): IteratorResult<T> | Promise<IteratorResult<T>> => {
          const value = back.shift();
          return value !== undefined ? { done: false, value } : next();
        };
        yield* pipelinedEach((e: T, o) => this.publish(Type, e, o), resumed, window, opts.options, first);
        return;
      }
      yield* pipelinedEach((e: T, o) => this.publish(Type, e, o), next, window, opts.options, 0);
    } finally {
      if (!exhausted) await it.return?.();
    }
  }

  /**
   * Whether publishMany may use fast-ingest batches on `stream`: the contract allows them, the
   * server is 2.14+, it did not refuse them lately, and the breaker is not open (one by one, the
   * events fail fast with JK_PRODUCER_CIRCUIT_OPEN).
   */
  #fastAllowed(stream: string): boolean {
    if (!this.catalog.stream(stream)?.allowBatched || !serverAtLeast(this.#nc, "2.14.0")) return false;
    if (this.#breaker.state === "open") return false;
    const off = this.#fastOff.get(stream);
    return off === undefined || off < Date.now();
  }

  /** publishEach over fast-ingest batches (see {@link fastPublish}); returns what to publish otherwise. */
  async *#fastEach<T>(
    Type: EventType<T>,
    spec: EventSpec,
    next: () => IteratorResult<T> | Promise<IteratorResult<T>>,
    window: number,
    opts: PublishManyOptions<T>,
  ): AsyncGenerator<PublishAck[], FastFallback | undefined, undefined> {
    if (this.#closing) throw closedError();
    const { span, carrier } = this.#telemetry.startSend(spec.subject, "", 0, "", spec.type);
    let index = 0;
    let count = 0;
    const prepare = (r: IteratorResult<T>): FastRead => {
      if (r.done) return { done: true };
      const i = index++;
      try {
        const o = opts.options?.(r.value, i) ?? {};
        const p = this.#prepare(Type, r.value, o);
        const msgId = o.msgId ?? uuidv7();
        const timing = this.#timing(p, o, msgId);
        const headers = this.#headers(p, o, msgId, carrier, timing.headers);
        this.#checkSize(
          { subject: p.spec.subject, stream: p.spec.stream, msgId },
          p.payload.length,
          headers.wireBytes,
        );
        const msg: BatchMessage = {
          spec: p.spec,
          subject: timing.subject,
          payload: p.payload,
          headers,
          msgId,
        };
        return { done: false, index: i, raw: r.value, msg };
      } catch (error) {
        return { done: false, index: i, raw: r.value, error: this.#refused(error, spec.subject) };
      }
    };
    const read = (): FastRead | Promise<FastRead> => {
      const r = next();
      return r instanceof Promise ? r.then(prepare) : prepare(r);
    };
    const gen = fastPublish(
      this.#batchContext(),
      window,
      read,
      () => this.#window.acquire(),
      () => this.#window.release(),
    );
    let finished = false;
    try {
      for (;;) {
        const r = await gen.next();
        if (r.done) {
          finished = true;
          return r.value;
        }
        count += r.value.length;
        this.#stats.published += r.value.length;
        this.#telemetry.sentInBatch(spec.subject, r.value.length);
        yield r.value;
      }
    } catch (err) {
      finished = true;
      const e =
        err instanceof JetkitError
          ? err
          : toProducerError(err, { subject: spec.subject, stream: spec.stream, msgId: "" });
      this.#stats.failures++;
      span.setAttribute(Attr.ERROR_TYPE, e.code);
      span.recordException(e);
      span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
      this.#log.error(
        {
          subject: spec.subject,
          stream: spec.stream,
          err: { code: e.code, message: e.message, ...e.details },
        },
        "fast-ingest batch failed",
      );
      throw e;
    } finally {
      if (!finished) await gen.return(undefined);
      if (span.isRecording())
        span.setAttributes({ [Attr.STREAM]: spec.stream, "messaging.batch.message_count": count });
      span.end();
    }
  }

  /**
   * Stops accepting publishes, waits for the ones in flight to settle (at most `timeoutMs`),
   * then drains and closes the connection. Safe to call more than once.
   */
  close(opts: { timeoutMs?: number } = {}): Promise<void> {
    this.#closing ??= (async () => {
      const timeoutMs = opts.timeoutMs ?? this.#retry.deadlineMs;
      let timer: NodeJS.Timeout | undefined;
      const flushed = await Promise.race([
        this.#window.idle().then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      if (!flushed) {
        this.#log.warn(
          { in_flight: this.#window.size, timeout_ms: timeoutMs },
          "closing with publishes still in flight; their callers will see JK_PRODUCER_CLOSED",
        );
      }
      if (!this.#nc.isClosed()) {
        await this.#nc.drain().catch(() => this.#nc.close());
      }
      this.#log.info({ ...this.#stats }, "producer closed");
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Counts and logs an event refused before sending (contract, options); returns the error. */
  #refused(err: unknown, subject: string | undefined): unknown {
    const code = err instanceof JetkitError ? err.code : "unknown";
    this.#stats.failures++;
    this.#telemetry.failed(subject ?? "unknown", code, 0);
    this.#log.warn(
      { subject, err: { code, message: (err as Error).message, ...(err as JetkitError).details } },
      "event refused before sending",
    );
    return err;
  }

  #specOf(input: EncodedEvent): EventSpec {
    if (input.type !== undefined) {
      const spec = this.catalog.byType(input.type);
      if (input.subject !== undefined && input.subject !== spec.subject) {
        throw new JetkitError(
          ProducerErrorCodes.OPTIONS,
          `type ${input.type} is published on ${spec.subject}, not on ${input.subject}: pass either type or subject, or both consistently.`,
          { details: { type: input.type, subject: input.subject } },
        );
      }
      return spec;
    }
    if (input.subject !== undefined) return this.catalog.bySubject(input.subject);
    throw new JetkitError(ProducerErrorCodes.OPTIONS, "publishEncoded needs the event's type or subject.");
  }

  /**
   * ts-proto encodes into the writer it is given; the producer's {@link ProtoWriter} writes the
   * same bytes as the default BinaryWriter, faster, and hands the payload out as a view of its
   * arena instead of a copy. Encoding is synchronous, so one writer per producer is enough; a
   * writer left mid-message by a throwing encode is dropped.
   */
  #encode<T>(Type: EventType<T>, event: T): Uint8Array {
    const encode = Type.encode as unknown as (message: T, writer: ProtoWriter) => ProtoWriter;
    const writer = this.#writer ?? new ProtoWriter();
    this.#writer = undefined;
    const payload = encode.call(Type, event, writer).finish();
    this.#writer = writer;
    return payload;
  }

  /** The partition key of a ts-proto event object (field localName is the same camelCase). */
  #keyOf(spec: EventSpec, event: unknown): string | undefined {
    let field = this.#keyFields.get(spec.type);
    if (field === undefined && !this.#keyFields.has(spec.type)) {
      field = spec.partitionKey
        ? spec.schema.fields.find((f) => f.name === spec.partitionKey)?.localName
        : undefined;
      this.#keyFields.set(spec.type, field);
    }
    if (field === undefined) return undefined;
    const value = (event as Record<string, unknown>)[field];
    return typeof value === "string" && value !== "" ? value : undefined;
  }

  /**
   * The subject to publish to and the TTL/schedule headers a publish asks for; throws
   * JK_PRODUCER_UNSUPPORTED when the stream does not allow them, JK_PRODUCER_OPTIONS for a bad value.
   */
  #timing(
    p: Prepared,
    opts: PublishOptions,
    msgId: string,
  ): { subject: string; headers: [string, string][] } {
    const { spec } = p;
    const ttlMs = opts.ttlMs ?? spec.ttlMs;
    const at =
      opts.deliverAt ?? (opts.delayMs !== undefined ? new Date(Date.now() + opts.delayMs) : undefined);
    if (ttlMs === undefined && at === undefined) return { subject: spec.subject, headers: [] };
    const stream = this.catalog.streams.find((s) => s.name === spec.stream);
    const headers: [string, string][] = [];
    let ttl: string | undefined;
    if (ttlMs !== undefined) {
      if (!Number.isFinite(ttlMs) || ttlMs < 1000) {
        throw new JetkitError(
          ProducerErrorCodes.OPTIONS,
          `ttlMs must be at least 1000 (the server counts whole seconds), got ${ttlMs}.`,
          {
            details: { option: "ttlMs", subject: spec.subject },
          },
        );
      }
      if (!stream?.allowMsgTtl) {
        throw new JetkitError(
          ProducerErrorCodes.UNSUPPORTED,
          `${spec.type} cannot be published with a TTL: stream ${spec.stream} does not allow per-message TTLs. Set allow_msg_ttl: true on its (jetkit.v1.stream) option and apply the streams, or publish without ttlMs.`,
          { details: { subject: spec.subject, stream: spec.stream, feature: "allow_msg_ttl" } },
        );
      }
      ttl = `${Math.ceil(ttlMs / 1000)}s`;
    }
    if (at === undefined) return { subject: spec.subject, headers: [["Nats-TTL", ttl!]] };
    if (Number.isNaN(at.getTime())) {
      throw new JetkitError(ProducerErrorCodes.OPTIONS, "deliverAt is not a valid date.", {
        details: { option: "deliverAt", subject: spec.subject },
      });
    }
    // A time more than a second ago is a mistake (a clock, a unit), not a wish to deliver now.
    const late = Date.now() - at.getTime();
    if (late > SCHEDULE_PAST_TOLERANCE_MS) {
      throw new JetkitError(
        ProducerErrorCodes.OPTIONS,
        `deliverAt ${at.toISOString()} is ${Math.round(late / 1000)} s in the past: schedule a future time, or publish without deliverAt/delayMs to deliver now.`,
        { details: { option: "deliverAt", subject: spec.subject, deliverAt: at.toISOString() } },
      );
    }
    // The schedule waits in the stream: one that outlives the stream's max age expires unfired.
    const ahead = at.getTime() - Date.now();
    if (stream && stream.maxAgeMs > 0 && ahead >= stream.maxAgeMs) {
      throw new JetkitError(
        ProducerErrorCodes.OPTIONS,
        `deliverAt ${at.toISOString()} is ${Math.round(ahead / 1000)} s ahead, beyond stream ${stream.name}'s max_age of ${Math.round(stream.maxAgeMs / 1000)} s: the schedule would expire before it fires. Schedule sooner, or raise max_age on the stream's (jetkit.v1.stream) option and apply the streams.`,
        {
          details: {
            option: "deliverAt",
            subject: spec.subject,
            stream: stream.name,
            maxAgeMs: stream.maxAgeMs,
          },
        },
      );
    }
    const scheduleSubject = `${spec.subject}.scheduled.${msgId}`;
    if (!stream?.allowMsgSchedules || !stream.subjects.some((s) => subjectMatches(s, scheduleSubject))) {
      throw new JetkitError(
        ProducerErrorCodes.UNSUPPORTED,
        `${spec.type} cannot be scheduled: stream ${spec.stream} ${stream?.allowMsgSchedules ? `does not capture ${spec.subject}.scheduled.> (its subjects: ${stream.subjects.join(", ")})` : "does not allow message schedules"}. Set allow_msg_schedules: true on its (jetkit.v1.stream) option with subjects that capture <subject>.scheduled.> (e.g. "${spec.subject.split(".")[0]}.>"), apply the streams, or publish without deliverAt/delayMs.`,
        { details: { subject: spec.subject, stream: spec.stream, feature: "allow_msg_schedules" } },
      );
    }
    // The schedule message waits on its own subject; the server publishes its body and headers to
    // the target at the time (within the tolerance above, a time just passed: at once). The event's TTL applies to what it publishes.
    headers.push(["Nats-Schedule", `@at ${at.toISOString()}`]);
    headers.push(["Nats-Schedule-Target", spec.subject]);
    if (ttl) headers.push(["Nats-Schedule-TTL", ttl]);
    return { subject: scheduleSubject, headers };
  }

  /**
   * Cancels an event published with `deliverAt`/`delayMs` that was not delivered yet. True when
   * it was cancelled; false when there was nothing to cancel (delivered already, cancelled, or
   * never scheduled).
   */
  async cancelScheduled<T>(Type: EventType<T>, msgId: string): Promise<boolean> {
    const spec = this.catalog.byType(Type.$type);
    const m = await this.#nc.request(
      `$JS.API.STREAM.PURGE.${spec.stream}`,
      JSON.stringify({ filter: `${spec.subject}.scheduled.${msgId}` }),
      { timeout: this.#retry.attemptTimeoutMs },
    );
    const r = m.json<{
      success?: boolean;
      purged?: number;
      error?: { description?: string; err_code?: number };
    }>();
    if (r.error) {
      throw new JetkitError(
        ProducerErrorCodes.REJECTED,
        `could not cancel scheduled ${spec.type} ${msgId}: ${r.error.description ?? "refused"} (${r.error.err_code ?? "?"}).`,
        { details: { subject: spec.subject, stream: spec.stream, msgId } },
      );
    }
    return (r.purged ?? 0) > 0;
  }

  async #send(p: Prepared, opts: PublishOptions): Promise<PublishAck> {
    if (this.#closing) throw closedError();
    const { spec } = p;
    let payload = p.payload;
    const subject = spec.subject;
    const msgId = opts.msgId ?? uuidv7();
    const ctx = { subject, stream: spec.stream, msgId };
    const timing = this.#timing(p, opts, msgId);

    // Fail fast while the breaker is open: the caller learns now, not after a deadline.
    let admission = this.#breaker.enter();
    if (admission.kind === "reject") {
      this.#stats.failures++;
      this.#telemetry.failed(subject, ProducerErrorCodes.CIRCUIT_OPEN, 0);
      throw new JetkitError(
        ProducerErrorCodes.CIRCUIT_OPEN,
        `not publishing to ${subject}: the circuit breaker is open after repeated failures to reach JetStream; it probes again in ${admission.retryInMs} ms. Retry later (same msgId) or buffer on your side.`,
        { details: { ...ctx, retry_in_ms: admission.retryInMs } },
      );
    }
    const waited = this.#window.acquire();
    if (waited) await waited;
    const started = performance.now();
    const deadline = Date.now() + this.#retry.deadlineMs;
    const correlationId = opts.correlationId ?? msgId;
    const { span, carrier } = this.#telemetry.startSend(
      subject,
      msgId,
      payload.length,
      correlationId,
      spec.type,
      opts.parentContext,
    );
    let attempts = 0;
    try {
      const list = this.#headerList(p, opts, msgId, carrier, timing.headers);
      const structured = this.#structured
        ? structuredMessage(this.#event(p, opts, msgId, carrier), list, payload)
        : undefined;
      const headers = toMsgHdrs(structured?.headers ?? list);
      if (opts.expect) setExpectations(headers, opts.expect);
      this.#checkSize(ctx, structured?.body.length ?? payload.length, headers.wireBytes);
      let probe = admission.probe;
      for (;;) {
        attempts++;
        let ack: PubAck;
        try {
          const timeout = Math.max(1, Math.min(this.#retry.attemptTimeoutMs, deadline - Date.now()));
          ack = await this.#acks.publish(timing.subject, structured?.body ?? payload, headers, timeout);
        } catch (err) {
          if (classify(err) === "refused" || (this.#closing && this.#nc.isClosed())) {
            // The broker answered (a refusal), so it is reachable; anything else says nothing about it.
            if (brokerAnswered(err)) this.#breaker.success(probe);
            else this.#breaker.release(probe);
            // A closed connection after an attempt was sent does not say the event was not stored.
            if (isClosedConnection(err) && (attempts > 1 || inFlightWhenClosed(err))) {
              throw this.#outcomeUnknown(ctx, attempts, "connection closed", err);
            }
            throw toProducerError(err, ctx);
          }
          await this.#judgeBroker(err, probe);
          const reason = err instanceof Error ? err.message : String(err);
          if (Date.now() >= deadline) throw this.#outcomeUnknown(ctx, attempts, reason, err);
          this.#stats.retries++;
          // The payload may be a view of the encoder's arena: a copy keeps one event waiting on
          // retries from holding a whole arena of already-acknowledged events in memory.
          if (attempts === 1 && payload.byteLength !== payload.buffer.byteLength) payload = payload.slice();
          this.#telemetry.retried(subject, err instanceof Error ? err.name : "Error");
          this.#log.debug({ ...logCtx(ctx), attempt: attempts, reason }, "publish attempt failed; retrying");
          await sleep(Math.min(backoffDelay(attempts, this.#retry), Math.max(0, deadline - Date.now())));
          // Accepted work waits for the breaker to let an attempt through instead of failing fast.
          for (;;) {
            admission = this.#breaker.enter();
            if (admission.kind === "pass") break;
            const left = deadline - Date.now();
            if (left <= 0) throw this.#outcomeUnknown(ctx, attempts, "circuit breaker open", err);
            await this.#breaker.whenPassable(left);
          }
          probe = admission.probe;
          continue;
        }
        this.#breaker.success(probe);
        if (ack.stream !== spec.stream) {
          throw wrongStream(ctx, `stream ${ack.stream} stored it (seq ${ack.seq})`);
        }
        const result: PublishAck = {
          stream: ack.stream,
          seq: ack.seq,
          duplicate: ack.duplicate,
          msgId,
          subject,
          attempts,
        };
        this.#published(result, started, span, correlationId);
        return result;
      }
    } catch (err) {
      const e = err instanceof JetkitError ? err : toProducerError(err, ctx);
      this.#stats.failures++;
      this.#telemetry.failed(subject, e.code, (performance.now() - started) / 1000);
      span.setAttribute(Attr.ERROR_TYPE, e.code);
      span.setAttribute(Attr.ATTEMPTS, attempts);
      span.recordException(e);
      span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
      this.#log.error(
        {
          ...logCtx(ctx),
          err: { code: e.code, message: e.message },
          attempts,
          correlation_id: correlationId,
        },
        "publish failed",
      );
      throw e;
    } finally {
      span.end();
      this.#window.release();
    }
  }

  #published(
    ack: PublishAck,
    started: number,
    span: ReturnType<ProducerTelemetry["startSend"]>["span"],
    correlationId: string,
  ): void {
    this.#stats.published++;
    if (ack.duplicate) this.#stats.duplicates++;
    this.#telemetry.published(ack.subject, (performance.now() - started) / 1000);
    if (span.isRecording()) {
      span.setAttributes({
        [Attr.STREAM]: ack.stream,
        [Attr.SEQUENCE]: ack.seq,
        [Attr.DUPLICATE]: ack.duplicate,
        [Attr.ATTEMPTS]: ack.attempts,
      });
    }
    if (this.#log.isLevelEnabled("debug")) {
      this.#log.debug(
        {
          subject: ack.subject,
          stream: ack.stream,
          seq: ack.seq,
          msg_id: ack.msgId,
          duplicate: ack.duplicate,
          attempts: ack.attempts,
          correlation_id: correlationId,
          trace_id: span.spanContext().traceId,
        },
        "published",
      );
    }
  }

  #checkSize(
    ctx: { subject: string; stream: string; msgId: string },
    payload: number,
    headers: number,
  ): void {
    const server = this.#nc.info?.max_payload ?? Number.POSITIVE_INFINITY;
    const streamLimit = this.catalog.stream(ctx.stream)?.maxMsgSize || Number.POSITIVE_INFINITY;
    const limit = Math.min(server, streamLimit);
    const size = payload + headers;
    if (size > limit) {
      const by = limit === server ? "the server's max_payload" : `stream ${ctx.stream}'s max_msg_size`;
      throw new JetkitError(
        ProducerErrorCodes.PAYLOAD_TOO_LARGE,
        `event for ${ctx.subject} is ${size} bytes (${payload} payload + ${headers} headers), over ${by} of ${limit} bytes. Split the event or store large data elsewhere and publish a reference.`,
        { details: { ...ctx, size, payload_bytes: payload, header_bytes: headers, limit } },
      );
    }
  }

  /**
   * The breaker's bookkeeping for an ambiguous failure. It is for a broker that is really
   * unreachable, not for a stream electing a leader: an answer (no responders, 5xx, 10158) says
   * the server is there; attempts failed by a disconnect are retried on the new connection; a
   * timeout counts only when the connection is down or the server does not answer a ping.
   */
  async #judgeBroker(err: unknown, probe: boolean): Promise<void> {
    if (brokerAnswered(err)) this.#breaker.success(probe);
    else if (failedByDisconnect(err)) this.#breaker.release(probe);
    else if (!this.#acks.connected || !(await this.#serverResponds())) this.#breaker.failure(probe);
    else this.#breaker.success(probe);
  }

  /**
   * Whether the connected server answers a ping within a second. One probe serves every attempt
   * that timed out at about the same time. A server that does not answer (SIGSTOPped, its host
   * gone) would be noticed by nats.js only after pingInterval x maxPingOut (4 minutes by
   * default), so the connection is dropped and re-dialled at once (to another node if any).
   */
  #serverResponds(): Promise<boolean> {
    const now = performance.now();
    if (this.#serverProbe && now - this.#serverProbe.at < 250) return this.#serverProbe.result;
    const result = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), Math.min(1000, this.#retry.attemptTimeoutMs));
      this.#nc.flush().then(
        () => {
          clearTimeout(timer);
          resolve(true);
        },
        () => {
          clearTimeout(timer);
          resolve(false);
        },
      );
    }).then((ok) => {
      if (!ok && this.#acks.connected && !this.#closing) {
        this.#log.warn({ server: this.#nc.getServer() }, "nats server does not answer a ping: reconnecting");
        this.#nc.reconnect().catch(() => {}); // closed or draining meanwhile: nothing to do
      }
      return ok;
    });
    this.#serverProbe = { at: now, result };
    return result;
  }

  #outcomeUnknown(
    ctx: { subject: string; stream: string; msgId: string },
    attempts: number,
    reason: string,
    cause: unknown,
  ): JetkitError {
    const windowMs = this.catalog.stream(ctx.stream)?.duplicateWindowMs;
    const within = windowMs ? ` within the stream's duplicate window (${windowMs / 1000} s)` : "";
    return new JetkitError(
      ProducerErrorCodes.OUTCOME_UNKNOWN,
      `no definite answer from stream ${ctx.stream} for ${ctx.subject} within ${this.#retry.deadlineMs} ms after ${attempts} attempt(s) (last: ${reason}). The event may be stored: publish it again with the same msgId (${ctx.msgId})${within}; an ack with duplicate=true means this copy was stored, a fresh ack means it was not and is now.`,
      { cause, details: { ...ctx, attempts, deadline_ms: this.#retry.deadlineMs, last: reason } },
    );
  }

  #breakerChanged(change: BreakerChange, opts: ProducerOptions): void {
    const fields = { breaker: change.to, from: change.from, failures: change.failures };
    if (change.to === "open") this.#log.warn(fields, "circuit breaker opened: publishes fail fast");
    else this.#log.info(fields, `circuit breaker ${change.to}`);
    opts.onBreakerChange?.(change);
  }

  async #watchConnection(): Promise<void> {
    for await (const s of this.#nc.status()) {
      if (s.type === "disconnect" || s.type === "reconnect") {
        this.#log.info({ event: s.type, server: s.server }, `nats connection ${s.type}`);
      } else if (s.type === "error") {
        this.#log.warn({ event: s.type, err: { message: s.error.message } }, "nats connection error");
      }
    }
  }
}

/** The JetStream expectation headers (checked by the stream before it stores the event). */
function setExpectations(h: MsgHdrs, e: Expectations): void {
  if (e.lastMsgId !== undefined) h.set(PubHeaders.ExpectedLastMsgIdHdr, e.lastMsgId);
  if (e.lastSequence !== undefined) h.set(PubHeaders.ExpectedLastSeqHdr, `${e.lastSequence}`);
  if (e.lastSubjectSequence !== undefined) {
    h.set(PubHeaders.ExpectedLastSubjectSequenceHdr, `${e.lastSubjectSequence}`);
  }
}

function logCtx(ctx: { subject: string; stream: string; msgId: string }) {
  return { subject: ctx.subject, stream: ctx.stream, msg_id: ctx.msgId };
}

/**
 * Connects to NATS and returns a {@link Producer}. Reconnects forever by default (publishes
 * retry to their deadline and the breaker fails fast meanwhile). Throws JK_PRODUCER_CONNECT when
 * the first connection fails.
 */
export async function createProducer(opts: ProducerOptions): Promise<Producer> {
  if (!opts.name || !/^[A-Za-z0-9._-]{1,64}$/.test(opts.name)) {
    throw new JetkitError(
      ProducerErrorCodes.OPTIONS,
      `producer name "${opts.name}" must be 1-64 letters, digits, ".", "_" or "-" (it becomes ce-source /jetkit/<name>).`,
      { details: { name: opts.name } },
    );
  }
  if (opts.maxInFlight !== undefined && !(Number.isInteger(opts.maxInFlight) && opts.maxInFlight >= 1)) {
    throw new JetkitError(ProducerErrorCodes.OPTIONS, "maxInFlight must be an integer >= 1.", {
      details: { maxInFlight: opts.maxInFlight },
    });
  }
  if (opts.contentMode !== undefined && opts.contentMode !== "binary" && opts.contentMode !== "structured") {
    throw new JetkitError(ProducerErrorCodes.OPTIONS, 'contentMode must be "binary" or "structured".', {
      details: { contentMode: opts.contentMode },
    });
  }
  if (
    opts.maxAtomicBatch !== undefined &&
    !(Number.isInteger(opts.maxAtomicBatch) && opts.maxAtomicBatch >= 1)
  ) {
    throw new JetkitError(ProducerErrorCodes.OPTIONS, "maxAtomicBatch must be an integer >= 1.", {
      details: { maxAtomicBatch: opts.maxAtomicBatch },
    });
  }
  if (
    opts.registryVersion !== undefined &&
    !(Number.isInteger(opts.registryVersion) && opts.registryVersion >= 1)
  ) {
    throw new JetkitError(
      ProducerErrorCodes.OPTIONS,
      `registryVersion must be a registered version number (1, 2, ...), not ${String(opts.registryVersion)}: see 'jetkit contracts list'.`,
      { details: { registryVersion: opts.registryVersion } },
    );
  }
  const parent = opts.logger ?? pino({ level: "info" });
  const log = parent.child({ service: opts.name, component: "producer" });
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: opts.servers,
      name: opts.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      // nats.js otherwise builds stack-capturing errors per request (publishes use the ack
      // inbox, but other requests on this connection still pay); jetkit's errors carry the caller's stack.
      noAsyncTraces: true,
      ...(opts.tls ? { tls: opts.tls } : {}),
      ...opts.connection,
    });
  } catch (err) {
    throw new JetkitError(
      ProducerErrorCodes.CONNECT,
      `cannot connect to NATS at ${String(opts.servers)}: ${(err as Error).message}. Check the URL, that nats-server runs, and the TLS/credentials options.`,
      { cause: err, details: { servers: opts.servers } },
    );
  }
  log.info({ server: nc.getServer(), max_payload: nc.info?.max_payload }, "producer connected");
  return new Producer(nc, opts, log);
}
