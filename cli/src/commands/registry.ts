import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { JetkitError } from "@jetkit/contracts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { type CommandDef, ExitCode, type OptionDef, type RunContext } from "../command.js";
import { locateBuf } from "../contracts-check/buf.js";
import { run } from "../contracts-check/process.js";
import { serversOf } from "../nats.js";
import {
  diffVersions,
  formatDiff,
  formatList,
  formatLog,
  formatPush,
  formatShow,
  type LogEntry,
  loadHistory,
  pushContracts,
  RegistryErrorCodes,
  RegistryStore,
  readImage,
} from "../registry/index.js";
import { findWorkspaceRoot } from "../workspace.js";
import { allowances } from "./contracts.js";
import { readGenConfig } from "./generate.js";

/** Connects to the registry's cluster or throws `JK_REGISTRY_UNREACHABLE` saying what to do. */
async function connectRegistry(ctx: RunContext): Promise<NatsConnection> {
  const servers = serversOf(ctx);
  try {
    return await connect({ servers, name: "jetkit-registry", timeout: 5000 });
  } catch (err) {
    throw new JetkitError(
      RegistryErrorCodes.UNREACHABLE,
      `cannot reach the contract registry at ${servers.join(", ")}: ${(err as Error).message}. The registry lives in the NATS cluster: start it ('jetkit dev up') or pass --servers / JETKIT_SERVERS; nothing was stored.`,
      { cause: err, details: { servers } },
    );
  }
}

async function withRegistry<T>(ctx: RunContext, f: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connectRegistry(ctx);
  try {
    return await f(nc);
  } finally {
    await nc.close();
  }
}

const buf = () => locateBuf(findWorkspaceRoot(process.cwd()) ?? process.cwd());

/** The image to push: `--contracts FILE`, else built from the workspace's contracts module with buf. */
async function imageToPush(ctx: RunContext): Promise<{ bytes: Uint8Array; source: string }> {
  const given = ctx.opts.contracts;
  if (typeof given === "string") {
    const path = resolve(given);
    try {
      return { bytes: readFileSync(path), source: path };
    } catch (err) {
      throw new JetkitError(
        "JK_CLI_FILE",
        `cannot read the contracts image ${path}: ${(err as Error).message}. Build it with 'jetkit contracts generate' or pass the right --contracts.`,
        { details: { path } },
      );
    }
  }
  const root = findWorkspaceRoot(process.cwd());
  if (!root) {
    throw new JetkitError(
      "JK_CLI_FILE",
      "nothing to push: no --contracts IMAGE and no buf.yaml here or above. Pass --contracts gen/contracts.binpb, or run from the contracts repository.",
    );
  }
  const { input } = readGenConfig(root);
  const tmp = mkdtempSync(join(tmpdir(), "jetkit-push-"));
  try {
    const out = join(tmp, "image.binpb");
    ctx.progress(`buf build ${input}...`);
    const built = await run(
      locateBuf(root),
      ["build", input, "--exclude-imports", "--as-file-descriptor-set", "-o", out],
      root,
    );
    if (built.code !== 0) {
      throw new JetkitError(
        "JK_CONTRACTS_BUF_FAILED",
        `buf build ${input} failed (exit ${String(built.code)}): ${(built.stderr || built.stdout).trim()}. Fix the contracts, then push again.`,
        { details: { code: built.code } },
      );
    }
    return { bytes: readFileSync(out), source: `${input} (built in ${root})` };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const list = (v: unknown): string[] => (Array.isArray(v) ? v : typeof v === "string" ? [v] : []);

function versionArg(value: string | undefined, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new JetkitError(
      "JK_CLI_USAGE",
      `<${name}> must be a version number (1, 2, ...), not "${value}". List them with 'jetkit contracts list'.`,
    );
  return n;
}

const json = (ctx: RunContext, value: unknown) => ctx.stdout.write(`${JSON.stringify(value, null, 2)}\n`);

const CONTRACTS: OptionDef = {
  name: "contracts",
  type: "string",
  value: "IMAGE",
  description:
    "The image to push (buf build <module> --exclude-imports --as-file-descriptor-set -o FILE); default: built from the workspace's contracts module (buf.gen.yaml's input) with buf",
  env: "JETKIT_CONTRACTS",
  config: "contracts",
};

const push: CommandDef = {
  path: ["contracts", "push"],
  summary:
    "Register the contracts as a new version in the cluster's registry, after checking them against every version",
  description:
    "Checks the image against EVERY registered version with the rules of 'jetkit contracts check' (buf breaking FILE, the catalog's compatibility and stored-history rules, the catalog rules), per compatibility mode: backward (default: new readers read old events), full (also old readers read new events), none (development: only the catalog rules). Modes are set per stream (ORDER=full) or proto package (shop.order.v1=none) with --mode, stored with the version and kept by later pushes until a push changes them. A refusal prints file, rule and fix and stores nothing (exit 1). The latest version's image with the same modes stores nothing (unchanged). Images go to the Object Store bucket JETKIT_CONTRACTS named by their SHA-256, versions to the KV bucket JETKIT_REGISTRY, R3 on a cluster.",
  options: [
    CONTRACTS,
    {
      name: "mode",
      type: "string",
      value: "MODE",
      multiple: true,
      description:
        "backward | full | none for everything, or SCOPE=MODE for a stream (ORDER=full) or package (shop.order.v1=none); SCOPE=default drops an override; repeatable",
    },
    {
      name: "allow",
      type: "string",
      value: "RULE",
      multiple: true,
      description:
        "Accept every finding of RULE (as 'contracts check'), recorded in the version with its reason; needs --reason",
    },
    {
      name: "reason",
      type: "string",
      value: "TEXT",
      multiple: true,
      description: "Why the allowed change is safe; one per --allow, or one for all",
    },
    {
      name: "message",
      type: "string",
      short: "m",
      value: "TEXT",
      description: "What this version is; default: the last git commit's subject",
    },
    {
      name: "who",
      type: "string",
      value: "NAME",
      description: "Who pushes; default: git's user.name <user.email>, else the OS user",
    },
  ],
  examples: [
    {
      command: "jetkit contracts push --contracts gen/contracts.binpb -s nats://n1:4222",
      description: "register a new version (or say it is unchanged)",
    },
    {
      command: "jetkit contracts push --mode ORDER=full",
      description: "check stream ORDER both ways from this push on",
    },
    {
      command:
        'jetkit contracts push --allow FIELD_RULE_TIGHTENED --reason "every stored order has a currency"',
      description: "accept a reviewed change; the version and the changelog record the reason",
    },
  ],
  exitCodes: [
    {
      code: 1,
      meaning:
        "refused (JK_REGISTRY_REFUSED), raced by another push (JK_REGISTRY_PUSH_RACED) or an invalid image",
    },
  ],
  async run(ctx) {
    const allow = allowances(ctx.opts.allow, ctx.opts.reason);
    const { bytes, source } = await imageToPush(ctx);
    readImage(bytes, source);
    const result = await withRegistry(ctx, (nc) => {
      ctx.progress("checking against the registered versions...");
      return pushContracts(nc, {
        image: bytes,
        source,
        modes: list(ctx.opts.mode),
        allow,
        buf: buf(),
        ...(typeof ctx.opts.message === "string" ? { message: ctx.opts.message } : {}),
        ...(typeof ctx.opts.who === "string" ? { who: ctx.opts.who } : {}),
      });
    });
    if (ctx.json)
      json(ctx, result.status === "refused" ? { ...result, code: RegistryErrorCodes.REFUSED } : result);
    else ctx.stdout.write(`${formatPush(result)}\n`);
    return result.status === "refused" ? ExitCode.FAILED : ExitCode.OK;
  },
};

const listCmd: CommandDef = {
  path: ["contracts", "list"],
  summary: "List the registered contract versions: number, when, digest, events, who, git ref, message",
  examples: [{ command: "jetkit contracts list --json", description: "every version as JSON" }],
  async run(ctx) {
    const versions = await withRegistry(ctx, async (nc) => (await RegistryStore.open(nc)).versions());
    if (ctx.json) json(ctx, { versions });
    else ctx.stdout.write(`${formatList(versions)}\n`);
    return ExitCode.OK;
  },
};

const show: CommandDef = {
  path: ["contracts", "show"],
  summary: "Show one registered version: who, when, git ref, modes, events and streams, overrides",
  args: [{ name: "version", description: "Version number", required: true }],
  examples: [
    { command: "jetkit contracts show 3", description: "what version 3 declares and who pushed it" },
  ],
  async run(ctx) {
    const n = versionArg(ctx.args[0], "version");
    const record = await withRegistry(ctx, async (nc) => (await RegistryStore.open(nc)).version(n));
    if (ctx.json) json(ctx, record);
    else ctx.stdout.write(`${formatShow(record)}\n`);
    return ExitCode.OK;
  },
};

const diff: CommandDef = {
  path: ["contracts", "diff"],
  summary:
    "What changed between two registered versions, and whether the second may follow the first (the rule names if not)",
  args: [
    { name: "a", description: "Version from", required: true },
    { name: "b", description: "Version to", required: true },
  ],
  examples: [
    {
      command: "jetkit contracts diff 1 3",
      description: "events, fields and streams changed; compatible or the rules that refuse",
    },
  ],
  async run(ctx) {
    const a = versionArg(ctx.args[0], "a");
    const b = versionArg(ctx.args[1], "b");
    const d = await withRegistry(ctx, async (nc) => {
      const store = await RegistryStore.open(nc);
      const all = await store.versions();
      const [ra, rb] = [await store.version(a, all), await store.version(b, all)];
      const [ha, hb] = await loadHistory(store, [ra, rb]);
      if (!ha || !hb) throw new Error("unreachable: two versions loaded");
      const image = readImage(await store.image(rb), `version ${b}'s image`);
      return diffVersions({ version: a, catalog: ha.catalog }, { version: b, image, modes: rb.modes }, buf());
    });
    if (ctx.json) json(ctx, d);
    else ctx.stdout.write(`${formatDiff(d)}\n`);
    return ExitCode.OK;
  },
};

const log: CommandDef = {
  path: ["contracts", "log"],
  summary:
    "The changelog generated from the registry: per version what changed, compatible or not, overrides with their reasons",
  examples: [
    {
      command: "jetkit contracts log > CHANGELOG.md",
      description: "the narrated changelog, newest first (Markdown)",
    },
  ],
  async run(ctx) {
    const entries = await withRegistry(ctx, async (nc) => {
      const store = await RegistryStore.open(nc);
      const records = await store.versions();
      const history = await loadHistory(store, records);
      const out: LogEntry[] = [];
      for (const [i, r] of records.entries()) {
        const prev = history[i - 1];
        if (!prev) {
          out.push({ record: r });
          continue;
        }
        const image = readImage(await store.image(r), `version ${r.version}'s image`);
        out.push({
          record: r,
          diff: await diffVersions(prev, { version: r.version, image, modes: r.modes }, buf()),
        });
      }
      return out;
    });
    if (ctx.json)
      json(ctx, {
        versions: entries.map((e) => ({
          ...e.record,
          ...(e.diff
            ? { changes: e.diff.changes, compatibleWithPrevious: e.diff.compatible, rules: e.diff.rules }
            : {}),
        })),
      });
    else ctx.stdout.write(`${formatLog(entries)}\n`);
    return ExitCode.OK;
  },
};

export const registryCommands = [push, listCmd, show, diff, log];
