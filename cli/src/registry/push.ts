import { userInfo } from "node:os";
import type { Catalog } from "@jetkit/contracts";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Allowance } from "../contracts-check/allow.js";
import { validateAllowances } from "../contracts-check/allow.js";
import { run } from "../contracts-check/process.js";
import { checkHistory, type HistoryCheck, type HistoryEntry } from "./check.js";
import { readImage } from "./image.js";
import { DEFAULT_MODES, type Modes, parseModes, sameModes } from "./modes.js";
import { RegistryStore, type VersionRecord } from "./store.js";

/** Options of {@link pushContracts}. */
export interface PushOptions {
  /** The image bytes (`buf build --exclude-imports --as-file-descriptor-set`). */
  readonly image: Uint8Array;
  /** What the image is, for messages (a path). */
  readonly source: string;
  /** `--mode` values, applied on top of the modes of the latest version. */
  readonly modes?: readonly string[];
  readonly allow?: readonly Allowance[];
  /** Who pushes. Default: `git config user.name <user.email>` in `cwd`, else the OS user. */
  readonly who?: string;
  readonly message?: string;
  /** Where to read the git ref and commit from. Default: the current directory. */
  readonly cwd?: string;
  /** The buf binary. */
  readonly buf: string;
}

export interface PushResult {
  /** `stored`: a new version; `unchanged`: the latest version already is this image with these modes; `refused`: nothing stored. */
  readonly status: "stored" | "unchanged" | "refused";
  readonly version?: number;
  readonly digest: string;
  readonly modes: Modes;
  /** How many registered versions the image was checked against. */
  readonly checkedAgainst: number;
  readonly check?: HistoryCheck;
  readonly record?: VersionRecord;
}

async function git(cwd: string, args: string[]): Promise<string | undefined> {
  const r = await run("git", args, cwd).catch(() => undefined);
  const out = r?.code === 0 ? r.stdout.trim() : "";
  return out === "" ? undefined : out;
}

async function gitFacts(cwd: string) {
  const [commit, ref, name, email, subject] = await Promise.all([
    git(cwd, ["rev-parse", "HEAD"]),
    git(cwd, ["rev-parse", "--abbrev-ref", "HEAD"]),
    git(cwd, ["config", "user.name"]),
    git(cwd, ["config", "user.email"]),
    git(cwd, ["log", "-1", "--format=%s"]),
  ]);
  const who = name ? `${name}${email ? ` <${email}>` : ""}` : undefined;
  return { commit, ref, who, subject };
}

/** The catalog of each registered version (images fetched once per digest). */
export async function loadHistory(
  store: RegistryStore,
  versions: readonly VersionRecord[],
): Promise<HistoryEntry[]> {
  const catalogs = new Map<string, Catalog>();
  const out: HistoryEntry[] = [];
  for (const r of versions) {
    let catalog = catalogs.get(r.digest);
    if (!catalog) {
      catalog = readImage(await store.image(r), `version ${r.version}'s image`).catalog;
      catalogs.set(r.digest, catalog);
    }
    out.push({ version: r.version, catalog, allowed: r.allowed });
  }
  return out;
}

/**
 * `jetkit contracts push`: checks the image against every registered version with the rules of
 * `jetkit contracts check` under the modes in force, then stores it as the next version. A
 * refused push stores nothing; the latest version's image with the same modes stores nothing
 * either (idempotent). Throws `JK_REGISTRY_IMAGE_INVALID`, `JK_REGISTRY_UNREACHABLE`,
 * `JK_REGISTRY_PUSH_RACED`.
 */
export async function pushContracts(nc: NatsConnection, opts: PushOptions): Promise<PushResult> {
  const allow = validateAllowances(opts.allow ?? []);
  const image = readImage(opts.image, opts.source);
  const reader = await RegistryStore.open(nc);
  const versions = await reader.versions();
  const latest = versions.at(-1);
  const modes = parseModes(opts.modes ?? [], latest?.modes ?? DEFAULT_MODES);
  const base = { digest: image.digest, modes, checkedAgainst: versions.length };
  if (latest && latest.digest === image.digest && sameModes(latest.modes, modes))
    return { ...base, status: "unchanged", version: latest.version };

  const history = await loadHistory(reader, versions);
  const check = await checkHistory({ image, history, modes, allow, buf: opts.buf });
  if (!check.ok) return { ...base, status: "refused", check };

  const facts = await gitFacts(opts.cwd ?? process.cwd());
  const record: VersionRecord = {
    version: (latest?.version ?? 0) + 1,
    digest: image.digest,
    size: image.bytes.length,
    who: opts.who ?? facts.who ?? userInfo().username,
    when: new Date().toISOString(),
    ...(facts.commit ? { git: { commit: facts.commit, ...(facts.ref ? { ref: facts.ref } : {}) } } : {}),
    message: opts.message ?? facts.subject ?? "",
    modes,
    allowed: check.allowed.filter((a) => a.allowedIn === undefined),
    waived: check.waived,
    events: image.catalog.events.map((e) => ({ type: e.type, subject: e.subject, stream: e.stream })),
    streams: image.catalog.streams.map((s) => ({ name: s.name, subjects: s.subjects })),
  };
  const writer = await RegistryStore.open(nc, { create: true });
  await writer.store(record, image.bytes);
  return { ...base, status: "stored", version: record.version, check, record };
}
