import { decodeHeaderValue, JetkitError, subjectsOverlap } from "@jetkit/contracts";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { type CommandDef, ExitCode } from "../command.js";
import { CONTRACTS_OPTION, catalogFor } from "../contracts-source.js";
import { type DecodedMessage, decodeWithRegistry } from "../decode.js";
import { connectNats } from "../nats.js";
import { RegistryResolver } from "../registry/index.js";

const tail: CommandDef = {
  path: ["tail"],
  summary: "Show events live as they are stored, decoded by contract (pretty, or JSON lines)",
  description:
    "Reads every stream whose subjects overlap the pattern with an ordered consumer (nothing is acked or changed). NATS wildcards: '*' one token, '>' the rest.",
  args: [
    {
      name: "pattern",
      description: "subject pattern, e.g. 'order.>' or 'customer.checkout.initiated'",
      required: true,
    },
  ],
  options: [
    CONTRACTS_OPTION,
    {
      name: "from-seq",
      type: "string",
      value: "SEQ",
      description: "Start at this stream sequence (pattern must fall in one stream)",
    },
    {
      name: "last",
      type: "string",
      value: "N",
      description: "Start with the matching messages among the last N of each stream",
    },
    { name: "all", type: "boolean", description: "Start at the beginning of the stream(s)" },
    { name: "count", type: "string", value: "N", description: "Exit after N messages" },
  ],
  examples: [
    { command: "jetkit tail 'order.>'", description: "every new order event, pretty" },
    {
      command: "jetkit tail customer.checkout.initiated --last 10 --json",
      description: "the recent checkouts as JSON lines",
    },
    { command: "jetkit tail 'dlq.>' --all --count 5", description: "the first five dead letters" },
  ],
  async run(ctx) {
    const pattern = ctx.args[0]!;
    const catalog = catalogFor(ctx);
    const streams = catalog.streams.filter((s) => s.subjects.some((p) => subjectsOverlap(p, pattern)));
    if (streams.length === 0) {
      throw new JetkitError(
        "JK_CLI_USAGE",
        `no stream of the contracts captures "${pattern}". Streams: ${catalog.streams.map((s) => `${s.name} (${s.subjects.join(", ")})`).join("; ")}.`,
      );
    }
    const fromSeq = ctx.opts["from-seq"] ? Number(ctx.opts["from-seq"]) : undefined;
    const last = ctx.opts.last ? Number(ctx.opts.last) : undefined;
    const count = ctx.opts.count ? Number(ctx.opts.count) : Number.POSITIVE_INFINITY;
    for (const [name, v] of [
      ["from-seq", fromSeq],
      ["last", last],
      ["count", ctx.opts.count ? count : undefined],
    ] as const) {
      if (v !== undefined && (!Number.isInteger(v) || v < 1))
        throw new JetkitError("JK_CLI_USAGE", `--${name} must be a positive integer.`);
    }
    if (fromSeq !== undefined && streams.length > 1) {
      throw new JetkitError(
        "JK_CLI_USAGE",
        `--from-seq needs a pattern inside one stream; "${pattern}" spans ${streams.map((s) => s.name).join(", ")}.`,
      );
    }
    const nc = await connectNats(ctx, "jetkit-tail");
    // A type the catalog does not know is looked up in the cluster's registry by its ce-dataschema.
    const registry = new RegistryResolver(nc);
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    let seen = 0;
    const done = new AbortController();
    const stop = () => done.abort();
    ctx.signal.addEventListener("abort", stop, { once: true });
    try {
      const readers = await Promise.all(
        streams.map(async (s) => {
          const info = await jsm.streams.info(s.name).catch(() => undefined);
          if (!info) {
            ctx.stderr.write(
              `stream ${s.name} does not exist on the server yet ('jetkit streams apply' creates it); skipping\n`,
            );
            return undefined;
          }
          let opts: Parameters<typeof js.consumers.get>[1];
          if (fromSeq !== undefined)
            opts = {
              filter_subjects: [pattern],
              deliver_policy: DeliverPolicy.StartSequence,
              opt_start_seq: fromSeq,
            };
          else if (last !== undefined) {
            opts = {
              filter_subjects: [pattern],
              deliver_policy: DeliverPolicy.StartSequence,
              opt_start_seq: Math.max(1, info.state.last_seq - last + 1),
            };
          } else if (ctx.opts.all) opts = { filter_subjects: [pattern], deliver_policy: DeliverPolicy.All };
          else opts = { filter_subjects: [pattern], deliver_policy: DeliverPolicy.New };
          const consumer = await js.consumers.get(s.name, opts);
          return { stream: s.name, messages: await consumer.consume() };
        }),
      );
      const active = readers.filter((r) => r !== undefined);
      if (active.length === 0) return ExitCode.UNAVAILABLE;
      if (!ctx.json)
        ctx.stderr.write(
          ctx.color.dim(`tailing ${pattern} on ${active.map((r) => r.stream).join(", ")} (Ctrl-C to stop)\n`),
        );
      done.signal.addEventListener("abort", () => {
        for (const r of active) r.messages.stop();
      });
      await Promise.all(
        active.map(async (r) => {
          for await (const m of r.messages) {
            if (seen >= count) break;
            seen++;
            print(ctx, await decodeWithRegistry(catalog, registry, m, r.stream));
            if (seen >= count) done.abort();
          }
        }),
      );
      return ExitCode.OK;
    } finally {
      ctx.signal.removeEventListener("abort", stop);
      await nc.close();
    }
  },
};

/** The dead letter's reason as text: it is stored percent-encoded (WIRE.md 4.1); shown raw if it does not decode. */
function reasonText(value: string): string {
  try {
    return decodeHeaderValue("Jetkit-Dlq-Reason", value);
  } catch {
    return value;
  }
}

function print(ctx: Parameters<CommandDef["run"]>[0], d: DecodedMessage): void {
  if (ctx.json) {
    ctx.stdout.write(`${JSON.stringify(d)}\n`);
    return;
  }
  const head = `${ctx.color.dim(`${d.stream}#${d.seq}`)} ${ctx.color.cyan(d.subject)} ${ctx.color.dim(d.time ?? "")} ${ctx.color.dim(d.id ?? "")}`;
  const body = d.error ? ctx.color.red(`<undecodable: ${d.error}>`) : JSON.stringify(d.event);
  const dlq = d.headers["Jetkit-Dlq-Failure-Class"]
    ? ctx.color.yellow(
        ` [${d.headers["Jetkit-Dlq-Failure-Class"]}: ${reasonText(d.headers["Jetkit-Dlq-Reason"] ?? "")}]`,
      )
    : "";
  const from = d.registryVersion ? ctx.color.dim(` (registry v${d.registryVersion})`) : "";
  const timing = [d.scheduledFor ? `scheduled for ${d.scheduledFor}` : "", d.ttl ? `ttl ${d.ttl}` : ""]
    .filter(Boolean)
    .join(", ");
  ctx.stdout.write(`${head}${from}${dlq}${timing ? ctx.color.yellow(` [${timing}]`) : ""}\n  ${body}\n`);
}

export const tailCommands = [tail];
