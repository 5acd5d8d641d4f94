import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import { JetkitError } from "@jetkit/contracts";
import { prostFiles, writeRustLib } from "@jetkit/contracts/codegen";
import { parse } from "yaml";
import { type CommandDef, ExitCode } from "../command.js";
import { locateBuf } from "../contracts-check/buf.js";
import { run } from "../contracts-check/process.js";
import { requireWorkspaceRoot } from "../workspace.js";

/** Where a team's contracts image goes unless jetkit.yaml's `contracts` names another path. */
export const DEFAULT_IMAGE = "gen/contracts.binpb";

interface GenPlugin {
  local?: string | string[];
  out?: string;
}

/** What `buf.gen.yaml` asks for: its plugins' output dirs, and the input module. */
export function readGenConfig(root: string): { outs: { plugin: string; out: string }[]; input: string } {
  const file = join(root, "buf.gen.yaml");
  if (!existsSync(file)) {
    throw new JetkitError(
      "JK_CLI_FILE",
      `no buf.gen.yaml in ${root}: 'jetkit contracts generate' runs the generation it describes. Scaffold a contracts repository with 'jetkit init <dir>', or write buf.gen.yaml (buf v2).`,
      { details: { path: file } },
    );
  }
  const doc = parse(readFileSync(file, "utf8")) as {
    plugins?: GenPlugin[];
    inputs?: { directory?: string }[];
  } | null;
  const outs = (doc?.plugins ?? []).flatMap((p) => {
    if (!p.out) return [];
    const plugin = Array.isArray(p.local) ? p.local.join(" ") : (p.local ?? "");
    return [{ plugin, out: p.out }];
  });
  const input = doc?.inputs?.find((i) => i.directory)?.directory ?? "contracts/proto";
  return { outs, input };
}

/** The image path from jetkit.yaml (`contracts`), else the default. */
function imagePath(root: string): string {
  const cfg = join(root, "jetkit.yaml");
  if (existsSync(cfg)) {
    const doc = parse(readFileSync(cfg, "utf8")) as { contracts?: unknown } | null;
    if (typeof doc?.contracts === "string") return doc.contracts;
  }
  return DEFAULT_IMAGE;
}

/** Deletes what an earlier run generated under `dir` (so removed files do not linger). */
function clean(dir: string): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    if (/\.(ts|rs)$/.test(e.name) || e.name.endsWith(".pb.go")) rmSync(join(e.parentPath, e.name));
  }
}

async function git(root: string, args: string[]): Promise<string> {
  const r = await run("git", args, root).catch(() => undefined);
  return r?.code === 0 ? r.stdout : "";
}

const generate: CommandDef = {
  path: ["contracts", "generate"],
  summary:
    "Regenerate code from the contracts: buf generate (TS, Go, Rust), the contracts image, the Rust crate's modules",
  description:
    "Runs the generation buf.gen.yaml describes after deleting the previous output (so a removed message leaves no stale file), builds the contracts image the SDKs and the CLI load (jetkit.yaml's 'contracts', default gen/contracts.binpb), and writes lib.rs of every protoc-gen-prost output (one module per proto package, the image embedded as IMAGE). With --check it fails when the result differs from what git has committed, as CI should.",
  options: [
    {
      name: "root",
      type: "string",
      value: "DIR",
      description:
        "Workspace root (holds buf.yaml and buf.gen.yaml); default: found from the current directory",
    },
    {
      name: "check",
      type: "boolean",
      description: "Fail (exit 1, JK_GEN_STALE) when the generated files differ from the committed ones",
    },
  ],
  examples: [
    { command: "jetkit contracts generate", description: "after editing a .proto file" },
    { command: "jetkit contracts generate --check", description: "in CI: the committed code is up to date" },
  ],
  exitCodes: [{ code: 1, meaning: "--check: the generated code is out of date (JK_GEN_STALE)" }],
  async run(ctx) {
    const root = requireWorkspaceRoot(ctx.opts.root);
    const { outs, input } = readGenConfig(root);
    const buf = locateBuf(root);
    for (const o of outs) clean(join(root, o.out));
    ctx.progress("buf generate...");
    const gen = await run(buf, ["generate"], root).catch((err: unknown) => {
      throw new JetkitError(
        "JK_CONTRACTS_BUF_MISSING",
        `cannot start buf (${buf}): ${(err as Error).message}. Install @bufbuild/buf, or set JETKIT_BUF.`,
        { cause: err },
      );
    });
    if (gen.code !== 0) {
      throw new JetkitError(
        "JK_CONTRACTS_BUF_FAILED",
        `buf generate failed (exit ${String(gen.code)}): ${(gen.stderr || gen.stdout).trim()}. A missing plugin is installed with the repository's dev dependencies (npm install: ts-proto) or its language's tool (go install google.golang.org/protobuf/cmd/protoc-gen-go, cargo install protoc-gen-prost).`,
        { details: { code: gen.code } },
      );
    }
    const image = imagePath(root);
    ctx.progress(`buf build -> ${image}...`);
    const built = await run(
      buf,
      ["build", input, "--exclude-imports", "--as-file-descriptor-set", "-o", image],
      root,
    );
    if (built.code !== 0) {
      throw new JetkitError(
        "JK_CONTRACTS_BUF_FAILED",
        `buf build ${input} failed (exit ${String(built.code)}): ${(built.stderr || built.stdout).trim()}`,
        { details: { code: built.code } },
      );
    }
    const rust = outs.filter((o) => o.plugin.includes("protoc-gen-prost"));
    for (const o of rust) {
      const src = join(root, o.out);
      if (prostFiles(src).length === 0) continue;
      writeRustLib(src, {
        image: relative(src, join(root, image)),
        title: "Rust types of the contracts (prost).",
        generator: "jetkit contracts generate",
      });
    }
    const written = [...outs.map((o) => o.out), image];
    if (ctx.opts.check === true) {
      const paths = [...new Set(written.map((p) => (p === image ? p : p.replace(/\/$/, ""))))];
      const changed = (
        await git(root, ["status", "--porcelain", "--untracked-files=all", "--", ...paths])
      ).trim();
      if (changed) {
        throw new JetkitError(
          "JK_GEN_STALE",
          `the generated code differs from what is committed:\n${changed}\nRun 'jetkit contracts generate' and commit the result.`,
          { details: { changed: changed.split("\n") } },
        );
      }
    }
    if (ctx.json) ctx.stdout.write(`${JSON.stringify({ root, outputs: written, image }, null, 2)}\n`);
    else {
      ctx.stdout.write(`generated ${outs.map((o) => o.out).join(", ")} and ${image}\n`);
      if (ctx.opts.check === true) ctx.stdout.write("the generated code matches what is committed\n");
    }
    return ExitCode.OK;
  },
};

export const generateCommands = [generate];
