import { INVARIANTS, type Invariant } from "../checker.js";
import {
  DIRECTIONS,
  TOXIC_ATTRIBUTES,
  TOXIC_TYPES,
  type ToxicSpec,
  type ToxicType,
} from "../proxy/toxics.js";
import { CONSUMER_GROUP_MODES, EFFECT_MODES } from "../workload/consumer-config.js";
import { parseDuration } from "./duration.js";
import {
  ABORT_METRICS,
  type AbortSpec,
  type Drill,
  FAULT_ACTIONS,
  type FaultAction,
  type FaultSpec,
  NODE_SELECTORS,
  PROBES,
  type ProbeSpec,
  type TargetSpec,
  type WorkloadSpec,
} from "./spec.js";

/** One problem in a drill file: where (`faults[2].toxic.type`) and what is wrong or allowed. */
export interface DrillProblem {
  path: string;
  message: string;
}

type Obj = Record<string, unknown>;

class Reader {
  readonly problems: DrillProblem[] = [];

  problem(path: string, message: string): void {
    this.problems.push({ path: path || "(root)", message });
  }

  obj(value: unknown, path: string): Obj | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "object" || Array.isArray(value)) {
      this.problem(path, "must be a mapping (key: value)");
      return undefined;
    }
    return value as Obj;
  }

  known(o: Obj | undefined, path: string, keys: readonly string[]): void {
    for (const k of Object.keys(o ?? {})) {
      if (!keys.includes(k)) this.problem(join(path, k), `unknown field; allowed: ${keys.join(", ")}`);
    }
  }

  str(o: Obj | undefined, key: string, path: string, def?: string): string | undefined {
    const v = o?.[key];
    if (v === undefined) {
      if (def === undefined) this.problem(join(path, key), "is required (a string)");
      return def;
    }
    if (typeof v !== "string" || v.trim() === "") {
      this.problem(join(path, key), "must be a non-empty string");
      return def;
    }
    return v;
  }

  num(
    o: Obj | undefined,
    key: string,
    path: string,
    def: number,
    min = 0,
    max = Number.MAX_SAFE_INTEGER,
  ): number {
    const v = o?.[key];
    if (v === undefined) return def;
    if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
      this.problem(join(path, key), `must be a number from ${min} to ${max}`);
      return def;
    }
    return v;
  }

  bool(o: Obj | undefined, key: string, path: string, def: boolean): boolean {
    const v = o?.[key];
    if (v === undefined) return def;
    if (typeof v !== "boolean") {
      this.problem(join(path, key), "must be true or false");
      return def;
    }
    return v;
  }

  dur(o: Obj | undefined, key: string, path: string, def?: number): number | undefined {
    const v = o?.[key];
    if (v === undefined) {
      if (def === undefined) this.problem(join(path, key), "is required (a duration such as 500ms, 5s, 1m)");
      return def;
    }
    const ms = parseDuration(v);
    if (ms === undefined)
      this.problem(join(path, key), `must be a duration such as 500ms, 5s, 1m (got ${JSON.stringify(v)})`);
    return ms ?? def;
  }

  oneOf<T extends string>(
    o: Obj | undefined,
    key: string,
    path: string,
    allowed: readonly T[],
    def?: T,
  ): T | undefined {
    const v = o?.[key];
    if (v === undefined) {
      if (def === undefined) this.problem(join(path, key), `is required; allowed: ${allowed.join(", ")}`);
      return def;
    }
    if (typeof v !== "string" || !allowed.includes(v as T)) {
      this.problem(join(path, key), `must be one of: ${allowed.join(", ")} (got ${JSON.stringify(v)})`);
      return def;
    }
    return v as T;
  }

  list(o: Obj | undefined, key: string, path: string): unknown[] {
    const v = o?.[key];
    if (v === undefined) return [];
    if (!Array.isArray(v)) {
      this.problem(join(path, key), "must be a list");
      return [];
    }
    return v;
  }
}

const join = (path: string, key: string | number) =>
  typeof key === "number" ? `${path}[${key}]` : path ? `${path}.${key}` : key;

function nodeSelector(r: Reader, value: unknown, path: string, nodes: number): string | undefined {
  const names = Array.from({ length: nodes }, (_, i) => `n${i + 1}`);
  const allowed = [...names, ...NODE_SELECTORS];
  if (typeof value !== "string" || !allowed.includes(value)) {
    r.problem(path, `must be a node: ${allowed.join(", ")} (got ${JSON.stringify(value)})`);
    return undefined;
  }
  return value;
}

function readTarget(r: Reader, raw: unknown): TargetSpec {
  const o = r.obj(raw, "target");
  r.known(o, "target", ["kind", "nodes", "syncInterval", "urls", "network"]);
  const kind = r.oneOf(o, "kind", "target", ["local", "url"] as const, "local") ?? "local";
  const urls = r.list(o, "urls", "target").filter((u, i) => {
    if (typeof u === "string" && /^(nats|tls):\/\/|^[\w.-]+:\d+$/.test(u)) return true;
    r.problem(`target.urls[${i}]`, "must be a NATS URL such as nats://127.0.0.1:4222");
    return false;
  }) as string[];
  if (kind === "url" && urls.length === 0) r.problem("target.urls", "is required when kind is url");
  const syncInterval = o?.syncInterval === undefined ? undefined : r.str(o, "syncInterval", "target");
  if (syncInterval !== undefined && !/^(always|\d+(ms|s|m))$/.test(syncInterval)) {
    r.problem("target.syncInterval", "must be always or a Go duration such as 2m, 10s");
  }
  return {
    kind,
    nodes: r.num(o, "nodes", "target", kind === "url" ? urls.length : 3, 3, 9),
    ...(syncInterval !== undefined ? { syncInterval } : {}),
    urls,
    network: r.oneOf(o, "network", "target", ["proxies", "auto"] as const, "proxies") ?? "proxies",
  };
}

function readWorkload(r: Reader, raw: unknown): WorkloadSpec {
  const p = "workload";
  const o = r.obj(raw, p);
  if (!o) r.problem(p, "is required (duration, rate, keys, consumer)");
  r.known(o, p, [
    "duration",
    "warmup",
    "drain",
    "rate",
    "keys",
    "keyDistribution",
    "maxInFlight",
    "publishTimeout",
    "publishDeadline",
    "breaker",
    "duplicateRate",
    "outbox",
    "consumer",
  ]);
  const ob = o?.outbox === undefined ? undefined : r.obj(o.outbox, `${p}.outbox`);
  r.known(ob, `${p}.outbox`, ["relays", "restartDelay", "lease"]);
  const c = r.obj(o?.consumer, `${p}.consumer`);
  const cp = `${p}.consumer`;
  r.known(c, cp, [
    "idempotency",
    "ordering",
    "concurrency",
    "handlerDelay",
    "ackWait",
    "maxDeliver",
    "batch",
    "maxAckPending",
    "restartDelay",
    "processes",
    "group",
    "effect",
  ]);
  const b = r.obj(o?.breaker, `${p}.breaker`);
  r.known(b, `${p}.breaker`, ["failureThreshold", "coolDown"]);
  return {
    durationMs: r.dur(o, "duration", p) ?? 10_000,
    warmupMs: r.dur(o, "warmup", p, 3000) ?? 3000,
    drainMs: r.dur(o, "drain", p, 20_000) ?? 20_000,
    ratePerSec: r.num(o, "rate", p, 50, 1, 10_000),
    keys: r.num(o, "keys", p, 16, 1, 100_000),
    keyDistribution: r.oneOf(o, "keyDistribution", p, ["uniform", "hot"] as const, "uniform") ?? "uniform",
    maxInFlight: r.num(o, "maxInFlight", p, 128, 1, 100_000),
    publishTimeoutMs: r.dur(o, "publishTimeout", p, 2000) ?? 2000,
    publishDeadlineMs: r.dur(o, "publishDeadline", p, 30_000) ?? 30_000,
    breaker: {
      failureThreshold: r.num(b, "failureThreshold", `${p}.breaker`, 5, 1, 1_000_000),
      coolDownMs: r.dur(b, "coolDown", `${p}.breaker`, 1000) ?? 1000,
    },
    duplicateRate: r.num(o, "duplicateRate", p, 0, 0, 1),
    ...(ob
      ? {
          outbox: {
            relays: r.num(ob, "relays", `${p}.outbox`, 2, 1, 4),
            restartDelayMs: r.dur(ob, "restartDelay", `${p}.outbox`, 500) ?? 500,
            leaseMs: r.dur(ob, "lease", `${p}.outbox`, 2000) ?? 2000,
          },
        }
      : {}),
    consumer: {
      idempotency: r.bool(c, "idempotency", cp, true),
      ordering: r.oneOf(c, "ordering", cp, ["per-key", "none"] as const, "none") ?? "none",
      concurrency: r.num(c, "concurrency", cp, 16, 1, 1000),
      handlerDelayMs: r.dur(c, "handlerDelay", cp, 0) ?? 0,
      ackWaitMs: r.dur(c, "ackWait", cp, 2000) ?? 2000,
      maxDeliver: r.num(c, "maxDeliver", cp, 50, 1, 10_000),
      batch: r.num(c, "batch", cp, 32, 1, 10_000),
      maxAckPending: r.num(c, "maxAckPending", cp, 1000, 1, 1_000_000),
      restartDelayMs: r.dur(c, "restartDelay", cp, 500) ?? 500,
      processes: r.num(c, "processes", cp, 1, 1, 8),
      group: r.oneOf(c, "group", cp, CONSUMER_GROUP_MODES, "competing") ?? "competing",
      effect: r.oneOf(c, "effect", cp, EFFECT_MODES, "file") ?? "file",
    },
  };
}

function readProbes(r: Reader, raw: unknown): ProbeSpec[] {
  const o = r.obj(raw, "steadyState");
  r.known(o, "steadyState", ["probes"]);
  return r.list(o, "probes", "steadyState").map((item, i) => {
    const p = `steadyState.probes[${i}]`;
    const po = r.obj(item, p);
    r.known(po, p, ["probe", "name", "max", "min", "window"]);
    const probe = r.oneOf(po, "probe", p, PROBES) ?? "cluster_healthy";
    const max = po?.max === undefined ? undefined : r.num(po, "max", p, 0, 0);
    const min = po?.min === undefined ? undefined : r.num(po, "min", p, 0, 0);
    if (probe !== "cluster_healthy" && max === undefined && min === undefined)
      r.problem(p, `probe ${probe} needs a tolerance: max or min`);
    return {
      probe,
      name: r.str(po, "name", p, probe) ?? probe,
      ...(max !== undefined ? { max } : {}),
      ...(min !== undefined ? { min } : {}),
      windowMs: r.dur(po, "window", p, 2000) ?? 2000,
    };
  });
}

const FAULT_FIELDS: Record<FaultAction, string[]> = {
  kill: ["node"],
  terminate: ["node"],
  pause: ["node"],
  rolling_restart: ["gap", "shutdown", "lameDuck"],
  toxic: ["link", "node", "toxic"],
  partition: ["nodes", "isolateClients"],
  netem: ["nodes", "delay", "jitter", "loss"],
  consumer_crash: ["point", "consumer"],
  consumer_pause: ["consumer"],
  poison: ["rate"],
  slow_handler: ["delay"],
  duplicate_publish: ["rate"],
  store_outage: [],
  relay_crash: ["relay"],
};

function readToxic(r: Reader, raw: unknown, path: string): ToxicSpec | undefined {
  const o = r.obj(raw, path);
  if (!o) {
    r.problem(path, "is required: { type, direction?, toxicity?, attributes }");
    return undefined;
  }
  r.known(o, path, ["type", "direction", "toxicity", "attributes"]);
  const type = r.oneOf(o, "type", path, TOXIC_TYPES) as ToxicType | undefined;
  const direction = r.oneOf(o, "direction", path, DIRECTIONS, "both");
  const toxicity = r.num(o, "toxicity", path, 1, 0, 1);
  const a = r.obj(o.attributes, `${path}.attributes`) ?? {};
  const attributes: Record<string, number> = {};
  if (type) {
    const allowed = Object.keys(TOXIC_ATTRIBUTES[type]);
    for (const [k, v] of Object.entries(a)) {
      if (!allowed.includes(k))
        r.problem(`${path}.attributes.${k}`, `unknown attribute of ${type}; allowed: ${allowed.join(", ")}`);
      else if (typeof v === "number" && v >= 0) attributes[k] = v;
      else {
        const ms = parseDuration(v);
        if (
          ms === undefined ||
          k === "bytes" ||
          k.endsWith("size") ||
          k === "rate" ||
          k === "size_variation"
        ) {
          r.problem(`${path}.attributes.${k}`, "must be a number >= 0");
        } else attributes[k] = ms;
      }
    }
  }
  if (!type) return undefined;
  return { type, direction: direction ?? "both", toxicity, attributes };
}

function readFaults(r: Reader, raw: unknown, nodes: number, workload: WorkloadSpec): FaultSpec[] {
  if (raw !== undefined && !Array.isArray(raw)) {
    r.problem("faults", "must be a list of faults");
    return [];
  }
  return ((raw as unknown[] | undefined) ?? []).map((item, i) => {
    const p = `faults[${i}]`;
    const o = r.obj(item, p);
    const action = (r.oneOf(o, "action", p, FAULT_ACTIONS) ?? "kill") as FaultAction;
    r.known(o, p, ["name", "action", "at", "for", "every", "count", ...FAULT_FIELDS[action]]);
    const atMs = r.dur(o, "at", p) ?? 0;
    const forMs = r.dur(o, "for", p, 0) ?? 0;
    const everyMs = o?.every === undefined ? undefined : r.dur(o, "every", p);
    const count = o?.count === undefined ? undefined : r.num(o, "count", p, 1, 1, 10_000);
    if (atMs < workload.warmupMs)
      r.problem(
        `${p}.at`,
        `must be at or after the warm-up (${workload.warmupMs} ms): the steady state is measured first`,
      );
    if (atMs >= workload.durationMs)
      r.problem(`${p}.at`, `must be before the end of the workload (${workload.durationMs} ms)`);
    if (everyMs !== undefined && everyMs <= forMs) r.problem(`${p}.every`, "must be longer than for");
    const spec: FaultSpec = {
      name: r.str(o, "name", p, `${action}#${i + 1}`) ?? action,
      action,
      atMs,
      forMs,
    };
    if (everyMs !== undefined) spec.everyMs = everyMs;
    if (count !== undefined) spec.count = count;
    if (["kill", "terminate", "pause"].includes(action) || (action === "toxic" && o?.node !== undefined)) {
      const node = nodeSelector(r, o?.node ?? "", `${p}.node`, nodes);
      if (node) spec.node = node;
    }
    if (["kill", "terminate", "pause", "partition"].includes(action) && forMs === 0) {
      r.problem(`${p}.for`, `is required for ${action} (how long until the node is back)`);
    }
    if (action === "rolling_restart") {
      spec.gapMs = r.dur(o, "gap", p, 1000) ?? 1000;
      spec.shutdown =
        r.oneOf(o, "shutdown", p, ["terminate", "lame_duck"] as const, "terminate") ?? "terminate";
      if (o?.lameDuck !== undefined && spec.shutdown !== "lame_duck")
        r.problem(`${p}.lameDuck`, "applies only with shutdown: lame_duck");
      if (spec.shutdown === "lame_duck") spec.lameDuckMs = r.dur(o, "lameDuck", p, 3000) ?? 3000;
    }
    if (action === "consumer_pause" && forMs === 0)
      r.problem(`${p}.for`, "is required for consumer_pause (how long the process hangs)");
    if (action === "consumer_crash" || action === "consumer_pause") {
      if (action === "consumer_crash")
        spec.point = r.oneOf(o, "point", p, ["now", "after_effect"] as const, "now") ?? "now";
      const names = Array.from({ length: workload.consumer.processes }, (_, j) => `consumer-${j + 1}`);
      const allowed = ["random", "all", ...names];
      const c = o?.consumer ?? "random";
      if (typeof c !== "string" || !allowed.includes(c))
        r.problem(`${p}.consumer`, `must be one of: ${allowed.join(", ")} (got ${JSON.stringify(c)})`);
      else spec.consumer = c;
    }
    if (action === "relay_crash") {
      if (!workload.outbox) r.problem(`${p}.action`, "relay_crash needs workload.outbox (relays to crash)");
      const names = Array.from({ length: workload.outbox?.relays ?? 0 }, (_, j) => `relay-${j + 1}`);
      const allowed = ["active", "random", "all", ...names];
      const c = o?.relay ?? "active";
      if (typeof c !== "string" || !allowed.includes(c))
        r.problem(`${p}.relay`, `must be one of: ${allowed.join(", ")} (got ${JSON.stringify(c)})`);
      else spec.relay = c;
    }
    if (action === "store_outage" && forMs === 0)
      r.problem(`${p}.for`, "is required for store_outage (how long the store is down)");
    if (action === "store_outage" && !workload.consumer.idempotency)
      r.problem(
        `${p}.action`,
        "store_outage needs workload.consumer.idempotency: true (it takes the idempotency store down)",
      );
    if (action === "toxic") {
      spec.link = r.oneOf(o, "link", p, ["client", "route"] as const, "client") ?? "client";
      const toxic = readToxic(r, o?.toxic, `${p}.toxic`);
      if (toxic) spec.toxic = toxic;
      if (forMs === 0) r.problem(`${p}.for`, "is required for toxic (how long the toxic stays)");
    }
    if (action === "partition" || action === "netem") {
      const list = r.list(o, "nodes", p);
      if (list.length === 0) r.problem(`${p}.nodes`, "is required: the minority side, e.g. [n1]");
      if (action === "partition" && list.length * 2 >= nodes)
        r.problem(`${p}.nodes`, `must be a minority (fewer than ${nodes / 2} of ${nodes} nodes)`);
      spec.nodes = list.map((n, j) => nodeSelector(r, n, `${p}.nodes[${j}]`, nodes) ?? "n1");
      spec.isolateClients = r.bool(o, "isolateClients", p, true);
    }
    if (action === "poison" || action === "duplicate_publish") {
      spec.rate = r.num(o, "rate", p, action === "poison" ? 20 : 0.2, 0, action === "poison" ? 10_000 : 1);
      if (forMs === 0) r.problem(`${p}.for`, `is required for ${action}`);
    }
    if (action === "netem") {
      if (o?.delay !== undefined) spec.delayMs = r.dur(o, "delay", p) ?? 0;
      if (o?.jitter !== undefined) spec.jitterMs = r.dur(o, "jitter", p) ?? 0;
      if (o?.loss !== undefined) spec.lossPct = r.num(o, "loss", p, 0, 0, 100);
      if (forMs === 0) r.problem(`${p}.for`, "is required for netem");
    }
    if (action === "slow_handler") {
      spec.delayMs = r.dur(o, "delay", p) ?? 0;
      if (forMs === 0) r.problem(`${p}.for`, "is required for slow_handler");
    }
    return spec;
  });
}

/** Validates a parsed drill document; returns the drill with defaults, or every problem found. */
export function validateDrillDocument(
  doc: unknown,
  file: string,
): { drill?: Drill; problems: DrillProblem[] } {
  const r = new Reader();
  const o = r.obj(doc, "");
  if (!o) {
    r.problem("", "a drill file must be a mapping with name, description, workload, faults, invariants");
    return { problems: r.problems };
  }
  r.known(o, "", [
    "name",
    "description",
    "seed",
    "target",
    "workload",
    "steadyState",
    "faults",
    "abort",
    "invariants",
    "recoveryBudget",
  ]);
  const name = r.str(o, "name", "") ?? "";
  if (name && !/^[a-z0-9][a-z0-9-]*$/.test(name))
    r.problem("name", "must be lower-case letters, digits and dashes");
  const description = r.str(o, "description", "") ?? "";
  const seedRaw = o.seed;
  if (seedRaw !== undefined && typeof seedRaw !== "string" && typeof seedRaw !== "number")
    r.problem("seed", "must be a string or a number");
  const target = readTarget(r, o.target);
  const workload = readWorkload(r, o.workload);
  const steadyState = readProbes(r, o.steadyState);
  const faults = readFaults(r, o.faults, target.nodes, workload);
  const abort: AbortSpec[] = r.list(o, "abort", "").map((item, i) => {
    const p = `abort[${i}]`;
    const ao = r.obj(item, p);
    r.known(ao, p, ["when", "above", "window"]);
    return {
      when: r.oneOf(ao, "when", p, ABORT_METRICS) ?? "lost",
      above: r.num(ao, "above", p, 0, 0),
      windowMs: r.dur(ao, "window", p, 3000) ?? 3000,
    };
  });
  const invList = r.list(o, "invariants", "");
  if (invList.length === 0) r.problem("invariants", `is required: a list of ${INVARIANTS.join(", ")}`);
  const invariants = invList.filter((v, i) => {
    if (typeof v === "string" && (INVARIANTS as readonly string[]).includes(v)) return true;
    r.problem(`invariants[${i}]`, `must be one of: ${INVARIANTS.join(", ")} (got ${JSON.stringify(v)})`);
    return false;
  }) as Invariant[];
  if (invariants.includes("per_key_order") && workload.consumer.ordering !== "per-key")
    r.problem(
      "workload.consumer.ordering",
      "must be per-key when the invariants include per_key_order (the consumer SDK keeps a key's order only in per-key mode)",
    );
  const recoveryBudgetMs = r.dur(o, "recoveryBudget", "", 1500) ?? 1500;
  if (workload.consumer.ackWaitMs < 1000)
    r.problem("workload.consumer.ackWait", "must be at least 1s (the consumer SDK's minimum)");
  if (r.problems.length > 0) return { problems: r.problems };
  return {
    drill: {
      name,
      description,
      seed: seedRaw === undefined ? name : String(seedRaw),
      target,
      workload,
      steadyState,
      faults,
      abort,
      invariants,
      recoveryBudgetMs,
      file,
    },
    problems: [],
  };
}
