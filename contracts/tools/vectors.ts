// Regenerates the outputs of contracts/vectors/golden.json from its inputs (protobuf-es is the
// reference encoder). Usage: node dist/tools/vectors.js [--check]
import { readFileSync, writeFileSync } from "node:fs";
import { fromJson, type JsonValue, toBinary } from "@bufbuild/protobuf";
import {
  deadLetterHeaders,
  type FailureClass,
  getCatalog,
  partitionKeyOf,
  replayHeaders,
  structuredEventBody,
  structuredHeaders,
} from "../src/index.js";
import { eventHeaders } from "../src/wire.js";

export const GOLDEN_PATH = new URL("../../vectors/golden.json", import.meta.url);

export interface HeaderInput {
  id: string;
  source: string;
  time: string;
  correlation_id?: string;
  causation_id?: string;
  traceparent?: string;
  tracestate?: string;
}

export interface GoldenVector {
  name: string;
  type: string;
  event: JsonValue;
  header_input: HeaderInput;
  subject?: string;
  stream?: string;
  payload_hex?: string;
  headers?: [string, string][];
}

/** A structured-mode event written from a vector (outputs: headers, body as JSON text). */
export interface StructuredVector {
  vector: string;
  headers?: [string, string][];
  body?: string;
}

/** What a reader must make of a received message (all inputs: it is the wire contract itself). */
export interface ReceivedVector {
  name: string;
  headers: [string, string][];
  /** The body: this vector's payload (binary mode) … */
  payload_of?: string;
  /** … or this text (structured mode). */
  body?: string;
  /** The attributes read, and the event data as hex; or the error code the reader must fail with. */
  expect?: {
    id: string;
    type: string;
    source: string;
    time: string;
    msg_id: string;
    partition_key?: string;
    correlation_id?: string;
    causation_id?: string;
    traceparent?: string;
    tracestate?: string;
    payload_hex: string;
  };
  error?: string;
}

export interface GoldenFile {
  about: string;
  vectors: GoldenVector[];
  structured: StructuredVector[];
  received: ReceivedVector[];
  dead_letter: {
    name: string;
    vector: string;
    input: {
      stream: string;
      sequence: number;
      subject: string;
      consumer: string;
      deliveries: number;
      failure_class: FailureClass;
      reason: string;
      first_failure: string;
      last_failure: string;
    };
    replay_sequence: number;
    headers?: [string, string][];
    replay_headers?: [string, string][];
  };
}

/** Computes every output of the golden file from its inputs. */
export function computeGolden(golden: GoldenFile): GoldenFile {
  const catalog = getCatalog();
  const vectors = golden.vectors.map((v) => {
    const spec = catalog.byType(v.type);
    const message = fromJson(spec.schema, v.event);
    const payload = toBinary(spec.schema, message);
    const h = v.header_input;
    const headers = eventHeaders({
      id: h.id,
      type: spec.type,
      source: h.source,
      time: h.time,
      partitionKey: partitionKeyOf(spec, message),
      correlationId: h.correlation_id,
      causationId: h.causation_id,
      traceparent: h.traceparent,
      tracestate: h.tracestate,
    });
    return {
      name: v.name,
      type: v.type,
      event: v.event,
      header_input: v.header_input,
      subject: spec.subject,
      stream: spec.stream,
      payload_hex: Buffer.from(payload).toString("hex"),
      headers,
    };
  });
  const dl = golden.dead_letter;
  const source = vectors.find((v) => v.name === dl.vector);
  if (!source) throw new Error(`dead_letter.vector "${dl.vector}" names no vector`);
  const i = dl.input;
  const dlqHeaders = deadLetterHeaders(source.headers, {
    stream: i.stream,
    sequence: i.sequence,
    subject: i.subject,
    consumer: i.consumer,
    deliveries: i.deliveries,
    failureClass: i.failure_class,
    reason: i.reason,
    firstFailure: i.first_failure,
    lastFailure: i.last_failure,
  });
  const structured = golden.structured.map((s) => {
    const v = vectors.find((x) => x.name === s.vector);
    if (!v) throw new Error(`structured.vector "${s.vector}" names no vector`);
    const h = v.header_input;
    const body = structuredEventBody(
      {
        id: h.id,
        type: v.type,
        source: h.source,
        time: h.time,
        partitionKey: partitionKeyOf(
          catalog.byType(v.type),
          fromJson(catalog.byType(v.type).schema, v.event),
        ),
        correlationId: h.correlation_id,
        causationId: h.causation_id,
        traceparent: h.traceparent,
        tracestate: h.tracestate,
      },
      Buffer.from(v.payload_hex, "hex"),
    );
    return {
      vector: s.vector,
      headers: structuredHeaders(v.headers),
      body: Buffer.from(body).toString("utf8"),
    };
  });
  return {
    about: golden.about,
    vectors,
    structured,
    received: golden.received,
    dead_letter: {
      ...dl,
      headers: dlqHeaders,
      replay_headers: replayHeaders(dlqHeaders, dl.replay_sequence),
    },
  };
}

export function readGolden(): GoldenFile {
  return JSON.parse(readFileSync(GOLDEN_PATH, "utf8")) as GoldenFile;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const current = readFileSync(GOLDEN_PATH, "utf8");
  const next = `${JSON.stringify(computeGolden(JSON.parse(current) as GoldenFile), null, 2)}\n`;
  if (process.argv.includes("--check")) {
    if (next !== current) {
      console.error(
        "contracts/vectors/golden.json is out of date: run 'pnpm --filter @jetkit/contracts vectors' and review the diff.",
      );
      process.exit(1);
    }
  } else {
    writeFileSync(GOLDEN_PATH, next);
    console.log(`wrote ${GOLDEN_PATH.pathname}`);
  }
}
