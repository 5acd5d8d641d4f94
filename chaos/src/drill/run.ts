import { mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { EventHeaders } from "@jetkit/contracts";
import { keyUuid } from "@jetkit/producers/services";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { type CheckResult, checkHistory, type StreamContents, sequencesToVerify } from "../checker.js";
import { type ChaosTarget, type NetworkInfo, openTarget, waitFor } from "../cluster/target.js";
import { ChaosError, ChaosErrorCodes } from "../errors.js";
import { History } from "../history.js";
import { createRng } from "../prng.js";
import { writeReports } from "../report/write.js";
import { ConsumerProcess } from "../workload/consumer-process.js";
import { EFFECT_DB, effectFile, readEffectLogs } from "../workload/effect-log.js";
import { ORDER_NAMESPACE, WORKLOAD_STREAM } from "../workload/events.js";
import { WorkloadProducer } from "../workload/producer.js";
import { RelayProcess } from "../workload/relay-process.js";

/** Outbox mode: the service's SQLite database (its own table and the outbox), in the report dir. */
const OUTBOX_DB = "outbox.sqlite";

import { type FaultContext, startFault, unsupportedReason } from "./faults.js";
import { loadDrill } from "./files.js";
import { consumerGroup, LeadershipPoll, streamGroup } from "./leadership.js";
import { type ProbeResult, runProbes } from "./probes.js";
import {
  GROUP_BUCKET,
  GROUP_PARTITIONS,
  IDEMPOTENCY_BUCKET,
  IDEMPOTENCY_STREAM,
  provision,
} from "./setup.js";
import type { Drill, FaultSpec } from "./spec.js";
import { readStream } from "./stream-read.js";

/** Options of {@link runDrill}. */
export interface RunDrillOptions {
  /** Where report.json, report.md, report.html and history.jsonl go. Default: a new temp dir. */
  reportDir?: string;
  /** Aborting it (e.g. on Ctrl-C) stops the drill, rolls back every fault and stops every process. */
  signal?: AbortSignal;
  /** Called about once a second with the phase, active faults and rates. */
  onProgress?: (p: DrillProgress) => void;
  /** Run against these client URLs instead of the drill's target (process faults are then skipped). */
  urls?: string[];
  /** Run with this seed instead of the file's (another schedule of the same drill; the report names it). */
  seed?: string;
}

export type DrillPhase = "setup" | "warmup" | "faults" | "recovery" | "check" | "teardown" | "done";

/** A progress line. */
export interface DrillProgress {
  phase: DrillPhase;
  elapsedMs: number;
  activeFaults: string[];
  publishPerSec: number;
  ackPerSec: number;
  effectPerSec: number;
  errorsPerSec: number;
  acked: number;
  effected: number;
  publishErrors: number;
  /** Publishes awaiting an ack (bounded by workload.maxInFlight). */
  inFlight: number;
}

/** One fault occurrence as the report shows it. */
export interface FaultRecord {
  name: string;
  action: string;
  status: "done" | "skipped" | "failed";
  startedAt?: number;
  endedAt?: number;
  detail: string;
}

export type DrillOutcome = "held" | "violated" | "aborted" | "not_steady" | "error";

/** What a drill run proves (also written as report.json). */
export interface DrillReport {
  drill: { name: string; description: string; file: string; seed: string; target: string };
  /** How the cluster's network was built: route proxies, network namespaces, or a URL target; and why. */
  network?: { mode: string; note?: string };
  outcome: DrillOutcome;
  /** True when the steady state held before and after and every invariant held. */
  held: boolean;
  abortReason?: string;
  error?: string;
  startedAt: number;
  endedAt: number;
  hypothesis: { before: ProbeResult[]; after: ProbeResult[]; heldBefore: boolean; heldAfter: boolean };
  faults: FaultRecord[];
  check: CheckResult;
  /** What the drill started (all stopped again at the end): proxies and local nodes with their ports. */
  endpoints: {
    proxies: { name: string; port: number }[];
    nodes: { name: string; clientPort: number; pid?: number }[];
  };
  reportDir: string;
  files: {
    json: string;
    markdown: string;
    html: string;
    history: string;
    /** The consumer processes' effect files (one per process; restarts append to the same file). */
    effects: string[];
  };
}

/** Runs a drill file (or a loaded drill) end to end and writes its reports. Never leaves processes, proxies or faults behind. */
export async function runDrill(
  fileOrDrill: string | Drill,
  opts: RunDrillOptions = {},
): Promise<DrillReport> {
  const loaded = typeof fileOrDrill === "string" ? await loadDrill(fileOrDrill) : fileOrDrill;
  const drill = opts.seed === undefined ? loaded : { ...loaded, seed: opts.seed };
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const reportDir = resolve(opts.reportDir ?? join(tmpdir(), `jetkit-drill-${drill.name}-${stamp}`));
  await mkdir(reportDir, { recursive: true });
  const history = new History(join(reportDir, "history.jsonl"));
  const rng = createRng(drill.seed);
  const startedAt = Date.now();
  const urls = opts.urls ?? (drill.target.kind === "url" ? drill.target.urls : undefined);

  let phase: DrillPhase = "setup";
  const setPhase = (p: DrillPhase) => {
    phase = p;
    history.add({ t: Date.now(), kind: "phase", phase: p });
  };
  history.add({ t: startedAt, kind: "phase", phase });

  // `stop` ends waits early: on abort, and when the workload is over (faults still on are rolled back).
  const stop = new AbortController();
  let abortReason: string | undefined;
  const abort = (reason: string) => {
    if (abortReason) return;
    abortReason = reason;
    history.add({ t: Date.now(), kind: "phase", phase: `aborted: ${reason}` });
    stop.abort();
  };
  const onSignal = () => abort("signal (operator)");
  if (opts.signal?.aborted) abort("signal (operator)");
  opts.signal?.addEventListener("abort", onSignal, { once: true });

  const rollbacks = new Map<string, () => Promise<void>>();
  const activeFaults = new Set<string>();
  const records: FaultRecord[] = [];
  let target: ChaosTarget | undefined;
  let network: NetworkInfo | undefined;
  let admin: NatsConnection | undefined;
  let producer: WorkloadProducer | undefined;
  const consumers: ConsumerProcess[] = [];
  const relays: RelayProcess[] = [];
  let poll: LeadershipPoll | undefined;
  const effectsDir = join(reportDir, "effects");
  let before: ProbeResult[] = [];
  let after: ProbeResult[] = [];
  let stream: StreamContents | undefined;
  let error: unknown;
  const endpoints: DrillReport["endpoints"] = { proxies: [], nodes: [] };
  let progressTimer: NodeJS.Timeout | undefined;
  const occurrences: Promise<void>[] = [];

  try {
    target = await openTarget({
      seed: drill.seed,
      nodes: drill.target.nodes,
      ...(urls ? { urls } : {}),
      ...(drill.target.syncInterval ? { syncInterval: drill.target.syncInterval } : {}),
      network: drill.target.network,
    });
    network = target.network;
    history.add({
      t: Date.now(),
      kind: "phase",
      phase: `network: ${network.mode}${network.note ? ` (${network.note})` : ""}`,
    });
    for (const p of target.proxies) endpoints.proxies.push({ name: p.name, port: p.port });
    for (const n of target.cluster?.nodes ?? []) {
      endpoints.nodes.push({ name: n.name, clientPort: n.ports.client, ...(n.pid ? { pid: n.pid } : {}) });
    }
    admin = await connect({ servers: target.directUrls, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    const jsm = await jetstreamManager(admin, { timeout: 10_000 });
    const durable = `chaos_${drill.name.replace(/-/g, "_")}_${startedAt}`;
    await provision(jsm, { replicas: Math.min(3, target.nodeNames.length) });
    const w = drill.workload;
    // The fulfillment example service's key space: order ids keyUuid(i, ORDER_NAMESPACE).
    const keys = Array.from({ length: w.keys }, (_, i) => keyUuid(i, ORDER_NAMESPACE));
    producer = new WorkloadProducer({
      servers: target.clientUrls,
      ratePerSec: w.ratePerSec,
      keys,
      keyDistribution: w.keyDistribution,
      maxInFlight: w.maxInFlight,
      timeoutMs: w.publishTimeoutMs,
      deadlineMs: w.publishDeadlineMs,
      breaker: w.breaker,
      duplicateRate: w.duplicateRate,
      rng: rng.fork("producer"),
      history,
      ...(w.outbox ? { outbox: { file: join(reportDir, OUTBOX_DB) } } : {}),
    });
    if (w.outbox) await rm(join(reportDir, OUTBOX_DB), { force: true });
    await producer.connect();
    const workloadProducer = producer;
    for (let i = 1; w.outbox && i <= w.outbox.relays; i++) {
      const relay = new RelayProcess(
        {
          name: `relay-${i}`,
          servers: target.clientUrls,
          file: join(reportDir, OUTBOX_DB),
          leaseMs: w.outbox.leaseMs,
        },
        history,
        w.outbox.restartDelayMs,
        (ack) => workloadProducer.relayed(ack),
      );
      relays.push(relay);
      relay.start();
    }
    // A fresh effects directory: the checker reads every file in it.
    await rm(effectsDir, { recursive: true, force: true });
    await mkdir(effectsDir, { recursive: true });
    for (let i = 1; i <= w.consumer.processes; i++) {
      const name = `consumer-${i}`;
      consumers.push(
        new ConsumerProcess(
          {
            servers: target.clientUrls,
            durable,
            name,
            idempotency: w.consumer.idempotency,
            bucket: IDEMPOTENCY_BUCKET,
            effectFile: effectFile(effectsDir, name),
            effect: w.consumer.effect,
            effectDb: join(effectsDir, EFFECT_DB),
            ordering: w.consumer.ordering,
            group: w.consumer.group,
            groupBucket: GROUP_BUCKET,
            groupPartitions: GROUP_PARTITIONS,
            groupSize: w.consumer.processes,
            concurrency: w.consumer.concurrency,
            handlerDelayMs: w.consumer.handlerDelayMs,
            batch: w.consumer.batch,
            ackWaitMs: w.consumer.ackWaitMs,
            maxDeliver: w.consumer.maxDeliver,
            maxAckPending: w.consumer.maxAckPending,
          },
          history,
          w.consumer.restartDelayMs,
        ),
      );
    }
    const partitioned = w.consumer.group === "partitioned";
    // The first creates the durable (or the group); the others join it.
    consumers[0]?.start();
    const first = partitioned
      ? await groupReady(admin, durable, 1)
      : await waitFor(async () => {
          const info = await jsm.consumers.info(WORKLOAD_STREAM, durable).catch(() => undefined);
          return (info?.num_waiting ?? 0) > 0;
        }, 15_000);
    for (const c of consumers.slice(1)) c.start();
    const ready =
      first &&
      (partitioned
        ? await groupReady(admin, durable, consumers.length)
        : await waitFor(async () => {
            const info = await jsm.consumers.info(WORKLOAD_STREAM, durable).catch(() => undefined);
            return (info?.num_waiting ?? 0) >= consumers.length;
          }, 15_000));
    if (!ready)
      throw new ChaosError(
        ChaosErrorCodes.WORKLOAD,
        "the workload consumer did not start pulling within 15 s",
      );

    // Leadership of the workload stream, the durable and the idempotency store, polled on its own.
    poll = await LeadershipPoll.open(
      target.nodeNames,
      target.directUrls,
      [
        streamGroup(WORKLOAD_STREAM),
        // A partitioned group has no durable: its ownership lives in the group bucket.
        partitioned ? streamGroup(`KV_${GROUP_BUCKET}`) : consumerGroup(WORKLOAD_STREAM, durable),
        ...(w.consumer.idempotency ? [streamGroup(IDEMPOTENCY_STREAM)] : []),
      ],
      history,
    );
    poll.start();

    const ctx: FaultContext = {
      target,
      producer,
      consumers,
      relays,
      admin,
      durable,
      rng: rng.fork("faults"),
      baseHandlerDelayMs: w.consumer.handlerDelayMs,
      baseDuplicateRate: w.duplicateRate,
      signal: stop.signal,
    };
    const t0 = Date.now();
    let lastProgress = { t: t0, attempted: 0, acked: 0, effects: 0, errors: 0 };
    const effectCount = () => consumers.reduce((n, c) => n + c.stats.effects, 0);
    const effectedLive = (id: string) => consumers.some((c) => c.effected.has(id));
    progressTimer = setInterval(() => {
      if (!producer) return;
      const now = Date.now();
      const dt = Math.max(1, now - lastProgress.t) / 1000;
      const s = producer.stats;
      opts.onProgress?.({
        phase,
        elapsedMs: now - t0,
        activeFaults: [...activeFaults],
        publishPerSec: Math.round((s.attempted - lastProgress.attempted) / dt),
        ackPerSec: Math.round((s.acked - lastProgress.acked) / dt),
        effectPerSec: Math.round((effectCount() - lastProgress.effects) / dt),
        errorsPerSec: Math.round((s.errors - lastProgress.errors) / dt),
        acked: s.acked,
        effected: effectCount(),
        publishErrors: s.errors,
        inFlight: s.inFlight,
      });
      lastProgress = {
        t: now,
        attempted: s.attempted,
        acked: s.acked,
        effects: effectCount(),
        errors: s.errors,
      };
    }, 1000);

    setPhase("warmup");
    producer.start();
    for (const spec of drill.faults) {
      occurrences.push(scheduleFault(spec, t0, w.durationMs, ctx));
    }
    await sleep(w.warmupMs, undefined, { signal: stop.signal }).catch(() => {});
    if (!abortReason) {
      before = await runProbes(drill.steadyState, history.events, Date.now(), target, effectedLive);
      if (!before.every((p) => p.held)) {
        abort(
          `steady state did not hold before the faults: ${before
            .filter((p) => !p.held)
            .map((p) => `${p.name}=${p.value}`)
            .join(", ")}`,
        );
      }
    }
    if (!abortReason) setPhase("faults");
    // The workload runs to its end unless aborted; abort conditions are checked meanwhile.
    const end = t0 + w.durationMs;
    const producerStop = setTimeout(() => void producer?.stop(), Math.max(0, end - Date.now()));
    let lostCheck: Promise<void> | undefined;
    while (!abortReason && Date.now() < end) {
      await sleep(Math.min(500, Math.max(0, end - Date.now())), undefined, { signal: stop.signal }).catch(
        () => {},
      );
      for (const a of drill.abort) {
        const now = Date.now();
        const recent = history.events.filter((e) => e.t >= now - a.windowMs);
        if (a.when === "publish_error_rate") {
          const attempts = recent.filter((e) => e.kind === "publish").length;
          const errors = recent.filter((e) => e.kind === "publish_error").length;
          if (attempts > 0 && errors / attempts > a.above)
            abort(`publish error rate ${(errors / attempts).toFixed(2)} > ${a.above}`);
        } else if (a.when === "failed_publishes" && producer.stats.failed > a.above) {
          abort(`failed publishes ${producer.stats.failed} > ${a.above}`);
        } else if (a.when === "lost" && !lostCheck) {
          // Acked 10 s ago and still not delivered: is it in the stream? Runs beside the loop, never blocks it.
          const old = history.events.filter((e) => e.t < now - 10_000);
          const seqs = sequencesToVerify(old).slice(0, 20);
          lostCheck = lookup(jsm, seqs, 1)
            .then((found) => {
              const missing = seqs.filter((s) => found.get(s) === null).length;
              if (missing > a.above) abort(`${missing} acknowledged messages are not in the stream`);
            })
            .catch(() => {})
            .finally(() => {
              lostCheck = undefined;
            });
        }
      }
    }
    clearTimeout(producerStop);
    await producer.stop();
    await lostCheck;
    stop.abort();
    await Promise.allSettled(occurrences);
    await rollbackAll(rollbacks, activeFaults, history);

    if (!abortReason) {
      setPhase("recovery");
      await waitFor(
        async () => (await target?.healthyNodes())?.length === target?.nodeNames.length,
        30_000,
        250,
      );
      after = await runProbes(
        drill.steadyState.filter((p) => p.probe !== "consumer_lag"),
        history.events,
        end,
        target,
        effectedLive,
      );
      // Drain: let the consumer catch up on everything acknowledged.
      const drained = await waitFor(
        () => {
          const acked = new Set<string>();
          const done = new Set<string>();
          for (const c of consumers) for (const id of c.effected) done.add(id);
          const committed: string[] = [];
          for (const e of history.events) {
            if (e.kind === "ack") acked.add(e.id);
            else if (e.kind === "skip" || e.kind === "dlq") done.add(e.id);
            else if (e.kind === "publish" && e.outbox) committed.push(e.id);
          }
          // Outbox mode: every committed event is relayed too (its commit is its promise).
          return committed.every((id) => acked.has(id)) && [...acked].every((id) => done.has(id));
        },
        w.drainMs,
        250,
      );
      const lag = drill.steadyState.filter((p) => p.probe === "consumer_lag");
      after.push(...(await runProbes(lag, history.events, Date.now(), target, effectedLive)));
      if (!drained) history.add({ t: Date.now(), kind: "phase", phase: "drain timed out" });
    }
    setPhase("check");
    await Promise.all([...consumers, ...relays].map((c) => c.stop()));
    await poll.stop();
    poll = undefined;
    // The truth the checker judges: every effect line of every process, and the stream as stored.
    // From a minute before the drill: a cluster given by URL may have a clock a little off.
    const read = await readStream(admin, WORKLOAD_STREAM, { since: new Date(startedAt - 60_000) });
    history.add({
      t: Date.now(),
      kind: "stream_read",
      stream: read.stream,
      firstSeq: read.firstSeq,
      lastSeq: read.lastSeq,
      messages: read.messages.length,
      complete: read.complete,
      ...(read.error ? { error: read.error } : {}),
    });
    const readAt = Date.now();
    for (const m of read.messages) history.add({ t: readAt, kind: "stored", stream: read.stream, ...m });
    // An incomplete read: look the unconfirmed sequences up one by one instead.
    if (!read.complete) stream = await lookup(jsm, sequencesToVerify(history.events));
  } catch (err) {
    error = err;
  } finally {
    if (progressTimer) clearInterval(progressTimer);
    opts.signal?.removeEventListener("abort", onSignal);
    stop.abort();
    await Promise.allSettled(occurrences);
    await rollbackAll(rollbacks, activeFaults, history);
    await producer?.close().catch(() => {});
    await Promise.allSettled([...consumers, ...relays].map((c) => c.stop()));
    await poll?.stop().catch(() => {});
    // Effects from the files (after every process stopped): each line is one run of the handler.
    const { effects, unreadable } = await readEffectLogs(effectsDir);
    for (const e of effects) history.add(e);
    if (unreadable > 0)
      history.add({ t: Date.now(), kind: "phase", phase: `${unreadable} effect lines could not be parsed` });
    await admin?.close().catch(() => {});
    await target?.dispose().catch(() => {});
    history.add({ t: Date.now(), kind: "phase", phase: "done" });
    await history.close();
  }

  const check = checkHistory(history.events, {
    invariants: drill.invariants,
    recoveryBudgetMs: drill.recoveryBudgetMs,
    ...(stream ? { stream } : {}),
  });
  const heldBefore = before.length === 0 ? !abortReason?.startsWith("steady") : before.every((p) => p.held);
  const heldAfter = after.every((p) => p.held);
  const outcome: DrillOutcome = error
    ? "error"
    : abortReason?.startsWith("steady state")
      ? "not_steady"
      : abortReason
        ? "aborted"
        : check.held && heldAfter
          ? "held"
          : "violated";
  const report: DrillReport = {
    drill: {
      name: drill.name,
      description: drill.description,
      file: drill.file,
      seed: drill.seed,
      target: urls
        ? `url: ${urls.join(", ")}`
        : `local ${drill.target.nodes}-node cluster${drill.target.syncInterval ? `, sync_interval ${drill.target.syncInterval}` : ""}, network: ${network?.mode ?? drill.target.network}`,
    },
    ...(network ? { network: { mode: network.mode, ...(network.note ? { note: network.note } : {}) } } : {}),
    outcome,
    held: outcome === "held",
    ...(abortReason ? { abortReason } : {}),
    ...(error ? { error: (error as Error).message } : {}),
    startedAt,
    endedAt: Date.now(),
    hypothesis: { before, after, heldBefore, heldAfter },
    faults: records,
    check,
    endpoints,
    reportDir,
    files: {
      json: join(reportDir, "report.json"),
      markdown: join(reportDir, "report.md"),
      html: join(reportDir, "report.html"),
      history: join(reportDir, "history.jsonl"),
      effects: consumers.map((c) => c.config.effectFile),
    },
  };
  await writeReports(report);
  opts.onProgress?.({
    phase: "done",
    elapsedMs: Date.now() - startedAt,
    activeFaults: [],
    publishPerSec: 0,
    ackPerSec: 0,
    effectPerSec: 0,
    errorsPerSec: 0,
    acked: check.counts.acked,
    effected: check.counts.effected,
    publishErrors: check.counts.publishErrors,
    inFlight: 0,
  });
  return report;

  async function scheduleFault(
    spec: FaultSpec,
    t0: number,
    durationMs: number,
    ctx: FaultContext,
  ): Promise<void> {
    const max = spec.count ?? (spec.everyMs ? Number.MAX_SAFE_INTEGER : 1);
    for (let k = 0; k < max; k++) {
      const at = spec.atMs + k * (spec.everyMs ?? 0);
      if (at >= durationMs) return;
      await sleep(Math.max(0, t0 + at - Date.now()), undefined, { signal: stop.signal }).catch(() => {});
      if (stop.signal.aborted) return;
      const id = `${spec.name}${max > 1 ? `#${k + 1}` : ""}`;
      const reason = ctx.target && unsupportedReason(spec, ctx.target);
      if (reason) {
        history.add({ t: Date.now(), kind: "fault_skipped", fault: id, action: spec.action, reason });
        records.push({ name: id, action: spec.action, status: "skipped", detail: reason });
        return;
      }
      let startedAt = Date.now();
      let started: Awaited<ReturnType<typeof startFault>>;
      try {
        activeFaults.add(id);
        started = await startFault(spec, ctx, (what) =>
          history.add({ t: Date.now(), kind: "fault_step", fault: id, detail: what }),
        );
        // The fault starts when it has taken effect (the node is dead, the partition is in place,
        // the crashed process is gone): recovery is measured from there.
        startedAt = started.at ?? Date.now();
        history.add({ t: startedAt, kind: "fault_start", fault: id, action: spec.action });
      } catch (err) {
        history.add({ t: startedAt, kind: "fault_start", fault: id, action: spec.action });
        activeFaults.delete(id);
        history.add({
          t: Date.now(),
          kind: "fault_end",
          fault: id,
          action: spec.action,
          detail: `failed: ${(err as Error).message}`,
        });
        records.push({
          name: id,
          action: spec.action,
          status: "failed",
          startedAt,
          endedAt: Date.now(),
          detail: (err as Error).message,
        });
        continue;
      }
      const record: FaultRecord = {
        name: id,
        action: spec.action,
        status: "done",
        startedAt,
        detail: started.detail,
      };
      records.push(record);
      const finish = async () => {
        await started.rollback();
        activeFaults.delete(id);
        record.endedAt = Date.now();
        history.add({
          t: record.endedAt,
          kind: "fault_end",
          fault: id,
          action: spec.action,
          detail: started.detail,
        });
      };
      rollbacks.set(id, finish);
      await sleep(spec.forMs, undefined, { signal: stop.signal }).catch(() => {});
      rollbacks.delete(id);
      await finish().catch((err) => {
        record.status = "failed";
        record.detail += `; rollback failed: ${(err as Error).message}`;
      });
    }
  }
}

async function rollbackAll(
  rollbacks: Map<string, () => Promise<void>>,
  active: Set<string>,
  history: History,
): Promise<void> {
  for (const [id, fn] of rollbacks) {
    rollbacks.delete(id);
    await fn().catch((err) =>
      history.add({
        t: Date.now(),
        kind: "phase",
        phase: `rollback of ${id} failed: ${(err as Error).message}`,
      }),
    );
    active.delete(id);
  }
}

/** Looks up stream sequences: msg id stored there, or null when the sequence is gone. */
async function lookup(
  jsm: Awaited<ReturnType<typeof jetstreamManager>>,
  seqs: number[],
  attempts = 5,
): Promise<StreamContents> {
  const out: StreamContents = new Map();
  for (const seq of seqs) {
    for (let attempt = 0; attempt < attempts; attempt++) {
      try {
        const m = await jsm.streams.getMessage(WORKLOAD_STREAM, { seq });
        out.set(seq, m?.header.get(EventHeaders.ID) ?? null);
        break;
      } catch (err) {
        if (/no message found|not found/i.test((err as Error).message)) {
          out.set(seq, null);
          break;
        }
        await sleep(200);
      }
    }
  }
  return out;
}

/**
 * True once every partition of the workload's partitioned consumer group has an owner and
 * `members` processes own some (within 15 s): the group's records in its KV bucket.
 */
async function groupReady(nc: NatsConnection, durable: string, members: number): Promise<boolean> {
  const kv = await new Kvm(nc).open(GROUP_BUCKET).catch(() => undefined);
  return waitFor(async () => {
    const bucket = kv ?? (await new Kvm(nc).open(GROUP_BUCKET).catch(() => undefined));
    if (!bucket) return false;
    const owners = new Set<string>();
    let owned = 0;
    try {
      for await (const key of await bucket.keys(`${durable}.${WORKLOAD_STREAM}.p.*`)) {
        const e = await bucket.get(key);
        const owner = e?.operation === "PUT" ? (e.json<{ owner?: string }>().owner ?? "") : "";
        if (owner) {
          owners.add(owner);
          owned++;
        }
      }
    } catch {
      return false; // a slow or new cluster timed the listing out: look again
    }
    return owned === GROUP_PARTITIONS && owners.size >= Math.min(members, GROUP_PARTITIONS);
  }, 15_000);
}
