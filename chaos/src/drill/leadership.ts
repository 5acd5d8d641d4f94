import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import type { History } from "../history.js";

/** A Raft group whose leader is polled: its name in the history and its info API subject. */
export interface PolledGroup {
  /** `stream:ORDER`, `consumer:ORDER/<durable>`. */
  group: string;
  /** `$JS.API.STREAM.INFO.ORDER`, `$JS.API.CONSUMER.INFO.ORDER.<durable>`. */
  api: string;
}

export function streamGroup(stream: string): PolledGroup {
  return { group: `stream:${stream}`, api: `$JS.API.STREAM.INFO.${stream}` };
}

export function consumerGroup(stream: string, durable: string): PolledGroup {
  return { group: `consumer:${stream}/${durable}`, api: `$JS.API.CONSUMER.INFO.${stream}.${durable}` };
}

interface Answer {
  node: string;
  leader?: string;
  error?: string;
  /** When the answer came. */
  at: number;
}

/**
 * Polls the leaders of Raft groups (streams, the durable) independently of the workload, every
 * `intervalMs`, over its own connection to each node (no fault proxy), and writes a `leader`
 * line to the history whenever a group's leader changes (null: no leader). Requests go out on
 * schedule even while earlier ones wait for an answer, so an outage is seen to the interval.
 *
 * A sample has a leader L when L's own connection answers that L leads and another node's
 * connection relays the same answer: L is alive and its peers reach it. A frozen or isolated former
 * leader, or a follower's stale view of one, does not count.
 */
export class LeadershipPoll {
  readonly #conns: { node: string; nc: NatsConnection }[];
  readonly #groups: PolledGroup[];
  readonly #history: History;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  #timer: NodeJS.Timeout | undefined;
  readonly #chains = new Map<string, Promise<void>>();
  readonly #last = new Map<string, string | null | undefined>();
  readonly #lastAt = new Map<string, number>();
  readonly #outstanding = new Map<string, number>();

  private constructor(
    conns: { node: string; nc: NatsConnection }[],
    groups: PolledGroup[],
    history: History,
    intervalMs: number,
    timeoutMs: number,
  ) {
    this.#conns = conns;
    this.#groups = groups;
    this.#history = history;
    this.#intervalMs = intervalMs;
    this.#timeoutMs = timeoutMs;
  }

  /** Connects to each node (`urls[i]` is node `names[i]`). */
  static async open(
    names: string[],
    urls: string[],
    groups: PolledGroup[],
    history: History,
    opts: { intervalMs?: number; timeoutMs?: number } = {},
  ): Promise<LeadershipPoll> {
    const conns: { node: string; nc: NatsConnection }[] = [];
    for (const [i, url] of urls.entries()) {
      const nc = await connect({
        servers: url,
        name: "chaos-leadership-poll",
        ignoreClusterUpdates: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        pingInterval: 2000,
        timeout: 2000,
      });
      conns.push({ node: names[i] ?? `s${i + 1}`, nc });
    }
    return new LeadershipPoll(conns, groups, history, opts.intervalMs ?? 100, opts.timeoutMs ?? 1500);
  }

  start(): void {
    if (this.#timer) return;
    const tick = () => {
      for (const g of this.#groups) this.#sample(g);
    };
    tick();
    this.#timer = setInterval(tick, this.#intervalMs);
  }

  /** Stops polling, waits for the samples in flight, closes the connections. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await Promise.allSettled([...this.#chains.values()]);
    await Promise.allSettled(this.#conns.map((c) => c.nc.close()));
  }

  #sample(g: PolledGroup): void {
    // A bounded number of samples per group wait for answers at once (timeoutMs / intervalMs).
    const waiting = this.#outstanding.get(g.group) ?? 0;
    if (waiting >= Math.ceil(this.#timeoutMs / this.#intervalMs) + 1) return;
    this.#outstanding.set(g.group, waiting + 1);
    const t = Date.now();
    const answers = Promise.all(this.#conns.map((c) => this.#ask(c, g)));
    // Samples are recorded in the order they were sent, whatever order the answers come in.
    const chain = (this.#chains.get(g.group) ?? Promise.resolve()).then(async () => {
      const got = await answers;
      this.#outstanding.set(g.group, (this.#outstanding.get(g.group) ?? 1) - 1);
      this.#record(g, t, got);
    });
    this.#chains.set(g.group, chain);
  }

  async #ask(c: { node: string; nc: NatsConnection }, g: PolledGroup): Promise<Answer> {
    try {
      const m = await c.nc.request(g.api, "", { timeout: this.#timeoutMs });
      const body = m.json() as {
        cluster?: { leader?: string };
        error?: { code?: number; description?: string };
      };
      const at = Date.now();
      if (body.error)
        return { node: c.node, error: `${body.error.code ?? ""} ${body.error.description ?? ""}`.trim(), at };
      return body.cluster?.leader
        ? { node: c.node, leader: body.cluster.leader, at }
        : { node: c.node, error: "answered without a leader", at };
    } catch (err) {
      return { node: c.node, error: (err as Error).message, at: Date.now() };
    }
  }

  #record(g: PolledGroup, t: number, answers: Answer[]): void {
    // A leader L counts when L itself answers that it leads (through its own connection) and
    // another node relays the same: a frozen or cut-off node's stale claim, or a follower's stale
    // view of a frozen leader, does not. A single node is its own confirmation.
    const claims = (l: string) => answers.filter((a) => a.leader === l).length;
    const self = answers.find((a) => a.leader !== undefined && a.leader === a.node);
    const leader =
      self?.leader !== undefined && (this.#conns.length === 1 || claims(self.leader) >= 2)
        ? self.leader
        : null;
    if (this.#last.get(g.group) === leader) return;
    this.#last.set(g.group, leader);
    // No leader: as of when it was asked. A leader: as of when it answered (a node frozen while
    // asked answers when it wakes, and only then is it a leader again).
    const answeredAt = Math.max(...answers.filter((a) => a.leader === leader).map((a) => a.at), t);
    const at = Math.max(leader === null ? t : answeredAt, this.#lastAt.get(g.group) ?? 0);
    this.#lastAt.set(g.group, at);
    // What each node's connection answered: the evidence for the sample.
    const views = answers
      .map((a) => `${a.node}: ${a.leader !== undefined ? `leader ${a.leader}` : a.error}`)
      .join("; ");
    this.#history.add({ t: at, kind: "leader", group: g.group, leader, views: views.slice(0, 400) });
  }
}
