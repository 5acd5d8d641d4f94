import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { JetkitError } from "@jetkit/contracts";
import { type CommandDef, ExitCode } from "../command.js";
import { cliPackage } from "../version.js";
import { DEFAULT_IMAGE } from "./generate.js";

/**
 * ts-proto, the TypeScript generator the jetkit SDKs read (its `$type`, encode and decode), at the
 * version this repository generates with (a test keeps the two equal).
 */
export const TS_PROTO_VERSION = "2.18.0";

/** The ts-proto options the SDKs need (the same as this repository's buf.gen.yaml). */
export const TS_PROTO_OPTIONS = [
  "esModuleInterop=true",
  "importSuffix=.js",
  "useDate=true",
  "env=node",
  "oneof=unions",
  "useOptionals=messages",
  "outputServices=false",
  "outputTypeAnnotations=static-only",
  "unknownFields=false",
];

/** The jetkit protos a team's module imports, shipped in @jetkit/contracts. */
const JETKIT_PROTOS = ["options.proto", "dead_letter.proto"];

export interface InitOptions {
  /** Lower-case domain name: subjects `<domain>.>`, stream `<DOMAIN>`, package `<org>.<domain>.v1`. */
  domain: string;
  /** Optional first segment of the proto package (e.g. the company). */
  org?: string;
  /** Go module path of the repository (the generated Go code lives at `<module>/gen/go`). */
  goModule: string;
  /** Name of the generated Rust crate. */
  crate: string;
}

function usage(message: string, details: Record<string, unknown> = {}): JetkitError {
  return new JetkitError("JK_CLI_USAGE", message, { details });
}

/** Checks the names `jetkit init` puts into protos, subjects, go.mod and Cargo.toml. */
export function checkInitOptions(o: InitOptions): void {
  const token = /^[a-z][a-z0-9]*$/;
  if (!token.test(o.domain))
    throw usage(
      `--domain "${o.domain}" must be one lower-case word of letters and digits (it is a subject token, a proto package segment and the stream name), e.g. billing.`,
      { option: "domain" },
    );
  if (o.org !== undefined && !token.test(o.org))
    throw usage(`--org "${o.org}" must be one lower-case word of letters and digits, e.g. acme.`, {
      option: "org",
    });
  if (!/^[a-z0-9.-]+(\/[A-Za-z0-9._~-]+)+$/.test(o.goModule))
    throw usage(
      `--go-module "${o.goModule}" is not a Go module path: a host and a path, e.g. github.com/acme/billing-contracts.`,
      { option: "go-module" },
    );
  if (!/^[a-z][a-z0-9_-]*$/.test(o.crate))
    throw usage(
      `--crate "${o.crate}" is not a crate name: lower-case letters, digits, - and _, e.g. billing-contracts.`,
      {
        option: "crate",
      },
    );
}

/** The directory of the installed @jetkit/contracts (its package root). */
function contractsPackageDir(): string {
  // The package's main entry is dist/src/index.js.
  return resolve(dirname(fileURLToPath(import.meta.resolve("@jetkit/contracts"))), "../..");
}

/** Every file of a new contracts repository, by path relative to its root. */
export function scaffold(o: InitOptions): Map<string, string> {
  const pkg = [o.org, o.domain, "v1"].filter(Boolean).join(".");
  const pkgDir = pkg.replaceAll(".", "/");
  const stream = o.domain.toUpperCase();
  const title = o.domain[0]!.toUpperCase() + o.domain.slice(1);
  const cli = cliPackage();
  const files = new Map<string, string>();
  const jetkitDir = join(contractsPackageDir(), "proto/jetkit/v1");
  for (const f of JETKIT_PROTOS) {
    files.set(`contracts/proto/jetkit/v1/${f}`, readFileSync(join(jetkitDir, f), "utf8"));
  }
  files.set(
    `contracts/proto/${pkgDir}/events.proto`,
    `syntax = "proto3";

// The ${o.domain} domain's events. Every event is a message with option (jetkit.v1.event): its
// subject (under the stream's subjects) and the field that orders it (partition_key).
package ${pkg};

import "google/protobuf/timestamp.proto";
import "jetkit/v1/options.proto";

option (jetkit.v1.stream) = {
  name: "${stream}"
  subjects: ["${o.domain}.>"]
  retention: RETENTION_LIMITS
  storage: STORAGE_FILE
  // Longer than the producers' retry deadline (30 s): a retry is never stored twice.
  duplicate_window: {seconds: 120}
  description: "${title} events"
};

// An example event: rename it, or replace it with your first real one.
message ExampleCreated {
  option (jetkit.v1.event) = {
    subject: "${o.domain}.example.created"
    partition_key: "example_id"
  };

  string example_id = 1;
  string name = 2;
  google.protobuf.Timestamp created_at = 3;
}
`,
  );
  files.set(
    "buf.yaml",
    `# buf v2 workspace of the ${o.domain} contracts. contracts/proto is the module: your events and the
# jetkit protos they import (jetkit/v1, copied from @jetkit/contracts by 'jetkit init').
# To use protovalidate field rules (buf.validate), add: deps: [buf.build/bufbuild/protovalidate]
# and run 'buf dep update'.
version: v2
modules:
  - path: contracts/proto
    lint:
      use:
        - STANDARD
    breaking:
      use:
        - FILE
        - FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED
        - FIELD_NO_DELETE_UNLESS_NAME_RESERVED
      except:
        # Deleting a field is allowed once its number and name are reserved (deprecate, then reserve).
        - FIELD_NO_DELETE
`,
  );
  files.set(
    "buf.gen.yaml",
    `# Code generation with local plugins ('jetkit contracts generate' runs it):
#   TypeScript: ts-proto (a dev dependency: npm install), the options the jetkit SDKs need
#   Go:         protoc-gen-go (go install google.golang.org/protobuf/cmd/protoc-gen-go@latest)
#   Rust:       protoc-gen-prost (cargo install protoc-gen-prost); lib.rs is written by jetkit
version: v2
managed:
  enabled: true
  override:
    - file_option: go_package_prefix
      value: ${o.goModule}/gen/go
inputs:
  - directory: contracts/proto
plugins:
  - local: ["node_modules/.bin/protoc-gen-ts_proto"]
    out: gen/ts
    opt:
${TS_PROTO_OPTIONS.map((x) => `      - ${x}`).join("\n")}
  - local: protoc-gen-go
    out: gen/go
    opt:
      - paths=source_relative
  - local: protoc-gen-prost
    out: gen/rust/src
`,
  );
  files.set(
    "jetkit.yaml",
    `# Read by the jetkit CLI run in this directory (flags and JETKIT_* variables take precedence).
# The contracts image, written by 'jetkit contracts generate':
contracts: ${DEFAULT_IMAGE}
`,
  );
  const deps = cli.dependencies;
  files.set(
    "package.json",
    `${JSON.stringify(
      {
        name: `${o.crate}`,
        private: true,
        type: "module",
        scripts: {
          generate: "jetkit contracts generate",
          "contracts:check": "jetkit contracts check",
        },
        dependencies: {
          "@bufbuild/protobuf": deps["@bufbuild/protobuf"],
          "@jetkit/contracts": `^${cli.version}`,
        },
        devDependencies: {
          "@bufbuild/buf": deps["@bufbuild/buf"],
          "@jetkit/cli": `^${cli.version}`,
          "ts-proto": TS_PROTO_VERSION,
        },
      },
      null,
      2,
    )}\n`,
  );
  files.set("go.mod", `module ${o.goModule}\n\ngo 1.24\n\nrequire google.golang.org/protobuf v1.36.12\n`);
  files.set(
    "gen/rust/Cargo.toml",
    `[package]
name = "${o.crate}"
version = "0.1.0"
edition = "2024"
description = "Rust types of the ${o.domain} contracts (prost), generated by jetkit contracts generate"

[lib]
path = "src/lib.rs"

[dependencies]
prost = "0.14"
prost-types = "0.14"
`,
  );
  files.set(".gitignore", "node_modules/\n.jetkit/\ngen/rust/target/\n");
  files.set(".github/workflows/contracts.yml", workflow());
  files.set(
    "README.md",
    `# ${o.domain} contracts

Event contracts of the ${o.domain} domain for jetkit services (TypeScript, Go, Rust).

\`\`\`sh
npm install                       # jetkit CLI, buf, ts-proto
npx jetkit contracts generate     # gen/ts, gen/go, gen/rust, ${DEFAULT_IMAGE}
npx jetkit contracts check        # what CI runs: lint, catalog rules, no breaking change
npx jetkit events                 # the catalog of this repository (jetkit.yaml names the image)
npx jetkit streams apply          # create the streams on a NATS server
\`\`\`

- \`contracts/proto/${pkgDir}/events.proto\`: the events (\`option (jetkit.v1.event)\`) and their
  stream (\`option (jetkit.v1.stream)\`). Add events here; add a package for another domain.
- \`contracts/proto/jetkit/v1\`: jetkit's options, copied from \`@jetkit/contracts\` (do not edit;
  \`jetkit init\` of a newer version brings newer copies).
- \`gen/\`: generated, committed, checked in CI (\`jetkit contracts generate --check\`). Go module
  \`${o.goModule}\` (\`gen/go\`), Rust crate \`${o.crate}\` (\`gen/rust\`).
- \`.github/workflows/contracts.yml\`: buf lint and breaking (\`bufbuild/buf-action\`), then the
  installed \`jetkit contracts check\` for the catalog rules (subjects, streams, partition keys).
`,
  );
  return files;
}

/** The CI workflow of a team's contracts repository (nothing of jetkit's own repository needed). */
export function workflow(): string {
  return `# Contracts CI: buf lint + breaking (bufbuild/buf-action), then jetkit's catalog rules with the
# jetkit CLI installed from this repository's package.json. Refusals name file, rule and fix, and
# show as GitHub annotations (the check sees GITHUB_ACTIONS=true).
name: contracts

on:
  pull_request:
  push:
    branches: [main]

permissions:
  contents: read

concurrency:
  group: contracts-\${{ github.ref }}
  cancel-in-progress: true

jobs:
  buf:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: bufbuild/buf-action@v1
        with:
          lint: true
          format: false
          breaking: \${{ github.event_name == 'pull_request' }}
          push: false
          archive: false
          pr_comment: false

  jetkit:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          # The check compares with the base branch (or HEAD~1 on main): it needs the history.
          fetch-depth: 0
      - uses: actions/setup-node@v4
        with:
          node-version: 24
      - run: npm ci
      - uses: actions/setup-go@v5
        with:
          go-version: stable
      - run: go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
      - run: cargo install protoc-gen-prost --version 0.5.0 --locked
      - name: Generated code is up to date
        run: npx jetkit contracts generate --check
      - name: Catalog rules (subjects, streams, partition keys) and breaking changes
        env:
          # Passed through the environment, never spliced into the script.
          BASE_REF: \${{ github.base_ref }}
        run: |
          if [ -n "$BASE_REF" ]; then
            npx jetkit contracts check --against "origin/$BASE_REF"
          else
            npx jetkit contracts check
          fi
`;
}

const init: CommandDef = {
  path: ["init"],
  summary:
    "Scaffold a contracts repository for your own events (buf workspace, example event, TS/Go/Rust generation, CI)",
  description:
    "Writes a new contracts repository into DIR (which must not hold any of the files it writes): a buf v2 workspace whose module holds one example event of your domain and the jetkit option protos (from the installed @jetkit/contracts), buf.gen.yaml for TypeScript (ts-proto, the options the SDKs need), Go (your module path) and Rust (your crate name), jetkit.yaml naming the contracts image, package.json with the CLI and generators, and a GitHub workflow that runs bufbuild/buf-action for lint and breaking plus the installed 'jetkit contracts check'. Then: npm install && npx jetkit contracts generate.",
  args: [{ name: "dir", description: "where to create the repository (created if missing)", required: true }],
  options: [
    {
      name: "domain",
      type: "string",
      value: "NAME",
      description:
        "Your domain (one lower-case word): subjects NAME.>, stream NAME, package [org.]NAME.v1. Default: from DIR",
    },
    {
      name: "org",
      type: "string",
      value: "NAME",
      description: "First segment of the proto package, e.g. acme",
    },
    {
      name: "go-module",
      type: "string",
      value: "PATH",
      description: "Go module path of the repository (default example.com/<domain>-contracts)",
    },
    {
      name: "crate",
      type: "string",
      value: "NAME",
      description: "Rust crate name of the generated code (default <domain>-contracts)",
    },
  ],
  examples: [
    {
      command:
        "jetkit init billing-contracts --domain billing --org acme --go-module github.com/acme/billing-contracts",
      description: "a repository for the billing domain's events",
    },
  ],
  async run(ctx) {
    const dir = resolve(ctx.args[0]!);
    const fromDir = basename(dir)
      .toLowerCase()
      .replace(/-?contracts$/, "")
      .replace(/[^a-z0-9]/g, "");
    const domain = typeof ctx.opts.domain === "string" ? ctx.opts.domain : fromDir;
    const o: InitOptions = {
      domain,
      ...(typeof ctx.opts.org === "string" ? { org: ctx.opts.org } : {}),
      goModule:
        typeof ctx.opts["go-module"] === "string" ? ctx.opts["go-module"] : `example.com/${domain}-contracts`,
      crate: typeof ctx.opts.crate === "string" ? ctx.opts.crate : `${domain}-contracts`,
    };
    if (!domain)
      throw usage(`cannot take a domain name from "${basename(dir)}": pass --domain, e.g. --domain billing.`);
    checkInitOptions(o);
    const files = scaffold(o);
    const existing = [...files.keys()].filter((f) => existsSync(join(dir, f)));
    if (existing.length > 0) {
      throw usage(
        `${dir} already has ${existing.join(", ")}: jetkit init never overwrites a file. Choose a new or empty directory.`,
        { existing },
      );
    }
    for (const [path, text] of files) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    if (ctx.json) {
      ctx.stdout.write(`${JSON.stringify({ dir, files: [...files.keys()].sort(), ...o }, null, 2)}\n`);
      return ExitCode.OK;
    }
    ctx.stdout.write(
      `created ${dir} (${readdirSync(dir).length} entries): domain ${o.domain}, Go module ${o.goModule}, crate ${o.crate}\n` +
        `next: cd ${ctx.args[0]} && git init && npm install && npx jetkit contracts generate\n`,
    );
    return ExitCode.OK;
  },
};

export const initCommands = [init];
