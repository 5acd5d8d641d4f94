import { existsSync, writeFileSync } from "node:fs";
import { JetkitError } from "@jetkit/contracts";
import {
  type Action,
  calloutConfig,
  explain,
  initPki,
  issueClientCert,
  loadGatewayConfig,
  loadPolicyFile,
  natsAuthorization,
  PolicyErrorCodes,
  startGateway,
} from "@jetkit/gateway";
import { pino } from "pino";
import { type CommandDef, ExitCode } from "../command.js";
import { CONTRACTS_OPTION, catalogFor } from "../contracts-source.js";
import { serversOf } from "../nats.js";

const pkiInit: CommandDef = {
  path: ["pki", "init"],
  summary: "Create a dev CA, a server certificate (127.0.0.1, localhost) and an empty CRL with openssl",
  args: [{ name: "dir", description: "directory for the PKI (created)", required: true }],
  options: [
    {
      name: "force",
      type: "boolean",
      description: "Replace an existing CA (every issued certificate stops being trusted)",
    },
    {
      name: "hosts",
      type: "string",
      value: "LIST",
      description: "Server certificate names, comma-separated (default 127.0.0.1,localhost)",
    },
  ],
  examples: [
    {
      command: "jetkit pki init .jetkit/pki",
      description: "ca.crt, server.crt/.key, crl.pem under .jetkit/pki",
    },
  ],
  async run(ctx) {
    const paths = await initPki(ctx.args[0]!, {
      ...(ctx.opts.force ? { force: true } : {}),
      ...(typeof ctx.opts.hosts === "string" ? { serverHosts: ctx.opts.hosts.split(",") } : {}),
    });
    ctx.stdout.write(
      ctx.json
        ? `${JSON.stringify(paths, null, 2)}\n`
        : Object.entries(paths)
            .map(([k, v]) => `${k.padEnd(11)}${v}`)
            .join("\n") + "\n",
    );
    return ExitCode.OK;
  },
};

const pkiIssue: CommandDef = {
  path: ["pki", "issue"],
  summary: "Issue a client certificate for a principal (SPIFFE ID as URI SAN, or a subject DN)",
  args: [
    { name: "dir", description: "the PKI directory of 'pki init'", required: true },
    { name: "name", description: "certificate name (file clients/<name>.crt)", required: true },
  ],
  options: [
    {
      name: "spiffe-id",
      type: "string",
      value: "URI",
      description: "spiffe://trust-domain/path, the principal the gateway reads",
    },
    {
      name: "dn",
      type: "string",
      value: "DN",
      description: "Subject DN like 'CN=bob,OU=ops,O=jetkit' (default CN=<name>)",
    },
    { name: "days", type: "string", value: "N", description: "Validity in days (default 30)" },
  ],
  examples: [
    {
      command: "jetkit pki issue .jetkit/pki checkout --spiffe-id spiffe://jetkit.dev/checkout",
      description: "an X.509-SVID for the checkout service",
    },
    {
      command: "jetkit pki issue .jetkit/pki bob --dn 'CN=bob,OU=ops,O=jetkit'",
      description: "a DN-identified operator certificate",
    },
  ],
  async run(ctx) {
    const dn = typeof ctx.opts.dn === "string" ? parseDn(ctx.opts.dn) : undefined;
    const cert = await issueClientCert(
      ctx.args[0]!,
      {
        name: ctx.args[1]!,
        ...(typeof ctx.opts["spiffe-id"] === "string" ? { spiffeId: ctx.opts["spiffe-id"] } : {}),
        ...(dn ? { dn } : {}),
      },
      typeof ctx.opts.days === "string" ? { days: Number(ctx.opts.days) } : {},
    );
    ctx.stdout.write(
      ctx.json
        ? `${JSON.stringify(cert, null, 2)}\n`
        : `cert   ${cert.cert}\nkey    ${cert.key}\nserial ${cert.serial}\n`,
    );
    return ExitCode.OK;
  },
};

function parseDn(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(",")) {
    const [k, ...v] = part.split("=");
    if (!k || v.length === 0)
      throw new JetkitError("JK_CLI_USAGE", `--dn "${text}" is not like 'CN=bob,OU=ops,O=jetkit'.`);
    out[k.trim()] = v.join("=").trim();
  }
  return out;
}

const policyCheck: CommandDef = {
  path: ["policy", "check"],
  summary: "Validate an RBAC policy file; with --explain, show the decision and the rule that decides it",
  args: [{ name: "file", description: "policy YAML", required: true }],
  options: [
    CONTRACTS_OPTION,
    {
      name: "explain",
      type: "string",
      value: "P,ACTION,SUBJECT",
      description:
        "principal,publish|subscribe,subject to decide, e.g. spiffe://jetkit.dev/checkout,publish,order.fulfillment.completed",
    },
  ],
  examples: [
    {
      command: "jetkit policy check policy.yaml",
      description: "exit 0 when valid; errors name the path and line",
    },
    {
      command:
        "jetkit policy check policy.yaml --explain spiffe://jetkit.dev/checkout,publish,customer.checkout.initiated",
      description: "allowed or denied, and by which rule",
    },
  ],
  exitCodes: [{ code: 1, meaning: "the policy is invalid, or --explain was denied" }],
  async run(ctx) {
    const policy = loadPolicyFile(ctx.args[0]!);
    if (typeof ctx.opts.explain !== "string") {
      const summary = {
        valid: true,
        roles: policy.roles.size,
        bindings: policy.bindings.length,
        denies: policy.deny.length,
      };
      ctx.stdout.write(
        ctx.json
          ? `${JSON.stringify(summary)}\n`
          : `${ctx.args[0]}: valid (${summary.roles} roles, ${summary.bindings} bindings, ${summary.denies} deny rules)\n`,
      );
      return ExitCode.OK;
    }
    const parts = ctx.opts.explain.split(",");
    if (parts.length !== 3)
      throw new JetkitError(
        "JK_CLI_USAGE",
        "--explain takes principal,action,subject (three values separated by commas).",
      );
    const [principal, action, subject] = parts as [string, string, string];
    const d = explain(policy, principal, action as Action, subject, { catalog: catalogFor(ctx) });
    if (ctx.json) ctx.stdout.write(`${JSON.stringify({ principal, action, subject, ...d })}\n`);
    else
      ctx.stdout.write(
        `${d.allowed ? ctx.color.green("ALLOW") : ctx.color.red("DENY")} ${principal} ${action} ${subject}\n  rule:   ${d.rule}\n  reason: ${d.reason}\n`,
      );
    return d.allowed ? ExitCode.OK : ExitCode.FAILED;
  },
};

const policyNats: CommandDef = {
  path: ["policy", "nats-config"],
  summary: "Print the nats-server authorization (verify_and_map users) equivalent to a policy",
  args: [{ name: "file", description: "policy YAML", required: true }],
  options: [
    CONTRACTS_OPTION,
    {
      name: "principal",
      type: "string",
      value: "PRINCIPAL",
      multiple: true,
      description:
        'An extra principal to map (one only reached by glob bindings); repeat the flag for more. Never split: a DN such as "CN=omar,OU=ops,O=X" is one principal',
    },
    {
      name: "durable",
      type: "string",
      value: "PRINCIPAL=NAME",
      multiple: true,
      description:
        "A durable consumer the principal may create, pull from, ack and delete directly (split at the last '='); repeat the flag for more",
    },
    {
      name: "tls-cert",
      type: "string",
      value: "FILE",
      description: "Server certificate for the emitted tls {} block",
    },
    { name: "tls-key", type: "string", value: "FILE", description: "Server key for the tls {} block" },
    { name: "tls-ca", type: "string", value: "FILE", description: "Client CA for the tls {} block" },
  ],
  examples: [
    {
      command:
        "jetkit policy nats-config policy.yaml --tls-cert s.crt --tls-key s.key --tls-ca ca.crt > auth.conf",
      description: "include auth.conf in nats-server.conf",
    },
    {
      command:
        'jetkit policy nats-config policy.yaml --principal "CN=omar,OU=ops,O=X" --durable "CN=omar,OU=ops,O=X=omar-orders"',
      description: "map a principal a glob binding reaches, and let it consume from its own durable",
    },
  ],
  exitCodes: [
    {
      code: 1,
      meaning: "the policy is invalid, or nats-server would read it differently (JK_POLICY_NATS_MISMATCH)",
    },
  ],
  async run(ctx) {
    const policy = loadPolicyFile(ctx.args[0]!);
    const o = ctx.opts;
    const tls =
      typeof o["tls-cert"] === "string" && typeof o["tls-key"] === "string" && typeof o["tls-ca"] === "string"
        ? { certFile: o["tls-cert"], keyFile: o["tls-key"], caFile: o["tls-ca"] }
        : undefined;
    const many = (v: unknown): string[] => (Array.isArray(v) ? v : typeof v === "string" ? [v] : []);
    const durables: Record<string, string[]> = {};
    for (const spec of many(o.durable)) {
      const eq = spec.lastIndexOf("=");
      const name = spec.slice(eq + 1);
      if (eq <= 0 || !/^[A-Za-z0-9_-]{1,64}$/.test(name)) {
        throw new JetkitError(
          PolicyErrorCodes.INVALID,
          `--durable "${spec}" must be PRINCIPAL=NAME, NAME being letters, digits, "_" or "-".`,
        );
      }
      const key = spec.slice(0, eq);
      durables[key] = [...(durables[key] ?? []), name];
    }
    const principals = [...many(o.principal), ...Object.keys(durables)];
    ctx.stdout.write(
      `${natsAuthorization(policy, {
        catalog: catalogFor(ctx),
        principals,
        durables,
        ...(tls ? { tls } : {}),
      })}\n`,
    );
    return ExitCode.OK;
  },
};

const gatewayStart: CommandDef = {
  path: ["gateway", "start"],
  summary: "Run the mTLS HTTPS gateway (RBAC, audit) until Ctrl-C",
  description:
    "Reads a gateway config file (YAML: listen, admin, tls, identity, policy, nats, limits). SIGHUP reloads the policy and TLS files; they are also watched (Kubernetes ..data swaps included). /healthz, /readyz and /metrics are on the admin listener (plain HTTP, default 127.0.0.1:9464).",
  options: [
    CONTRACTS_OPTION,
    {
      name: "file",
      type: "string",
      short: "f",
      value: "FILE",
      description: "Gateway config YAML",
      env: "JETKIT_GATEWAY_CONFIG",
      config: "gateway",
    },
    {
      name: "dry-run",
      type: "boolean",
      description: "Log and audit what the policy would deny, but allow it",
    },
  ],
  examples: [
    {
      command: "jetkit gateway start -f gateway.yaml",
      description: "serve until Ctrl-C; the URL is printed",
    },
  ],
  async run(ctx) {
    const file = ctx.opts.file;
    if (typeof file !== "string" || !existsSync(file)) {
      throw new JetkitError(
        "JK_CLI_FILE",
        `gateway config ${file ?? "(none)"} not found: pass -f gateway.yaml (see gateway/README.md for the format).`,
      );
    }
    const config = loadGatewayConfig(file);
    if (ctx.opts["dry-run"]) config.policy = { ...config.policy, dryRun: true };
    const noServers =
      !config.nats.servers || (Array.isArray(config.nats.servers) && config.nats.servers.length === 0);
    if (typeof ctx.opts.servers === "string" || noServers) {
      config.nats = { ...config.nats, servers: serversOf(ctx) };
    }
    const gateway = await startGateway({
      ...config,
      ...(typeof ctx.opts.contracts === "string" ? { catalog: catalogFor(ctx) } : {}),
      logger: pino({ level: process.env.JETKIT_LOG_LEVEL ?? "info" }),
    });
    ctx.stderr.write(
      `gateway listening on ${gateway.url}${gateway.adminUrl ? `, admin (healthz, readyz, metrics) on ${gateway.adminUrl}` : ""} (Ctrl-C to stop)\n`,
    );
    await new Promise<void>((resolve) =>
      ctx.signal.addEventListener("abort", () => resolve(), { once: true }),
    );
    await gateway.close();
    return ExitCode.OK;
  },
};

const gatewayCalloutConfig: CommandDef = {
  path: ["gateway", "callout-config"],
  summary:
    "Generate the issuer account nkey and xkey of a NATS auth callout served by the gateway, and print the nats-server block and the gateway.yaml authCallout section",
  description:
    "Each run makes new keys and a new auth user password. The nats-server block has the AUTH, application and SYS accounts and authorization { auth_callout { issuer, users, account, xkey } }; the gateway section has the seeds (keep it secret: --gateway-out writes it with mode 0600).",
  options: [
    {
      name: "account",
      type: "string",
      value: "NAME",
      description: "Account of the authorised clients (default APP)",
    },
    {
      name: "auth-user",
      type: "string",
      value: "NAME",
      description: "User the gateway's callout connects as (default auth)",
    },
    {
      name: "nats",
      type: "string",
      value: "URL",
      description: "URL the gateway's callout connects to (default nats://127.0.0.1:4222)",
    },
    {
      name: "trusted",
      type: "string",
      value: "PRINCIPAL",
      multiple: true,
      description: "A principal given a user without limits (an operator's tool); repeat the flag for more",
    },
    { name: "no-xkey", type: "boolean", description: "Do not encrypt callout requests (not recommended)" },
    {
      name: "tls-cert",
      type: "string",
      value: "FILE",
      description: "Server certificate for the tls {} block",
    },
    { name: "tls-key", type: "string", value: "FILE", description: "Server key for the tls {} block" },
    {
      name: "tls-ca",
      type: "string",
      value: "FILE",
      description: "Client CA for the tls {} block and the gateway's connection",
    },
    {
      name: "client-cert",
      type: "string",
      value: "FILE",
      description: "Certificate of the gateway's callout connection (the server verifies every client)",
    },
    { name: "client-key", type: "string", value: "FILE", description: "Its key" },
    {
      name: "server-out",
      type: "string",
      value: "FILE",
      description: "Write the nats-server block to FILE instead of stdout",
    },
    {
      name: "gateway-out",
      type: "string",
      value: "FILE",
      description: "Write the gateway.yaml section to FILE (mode 0600) instead of stdout",
    },
  ],
  examples: [
    {
      command:
        "jetkit gateway callout-config --tls-cert server.crt --tls-key server.key --tls-ca ca.crt --client-cert gw.crt --client-key gw.key --server-out auth.conf --gateway-out callout.yaml",
      description: "include auth.conf in nats-server.conf, merge callout.yaml into gateway.yaml",
    },
  ],
  async run(ctx) {
    const o = ctx.opts;
    const str = (k: string) => (typeof o[k] === "string" ? (o[k] as string) : undefined);
    const many = (v: unknown): string[] => (Array.isArray(v) ? v : typeof v === "string" ? [v] : []);
    const [cert, key, ca, ccert, ckey] = ["tls-cert", "tls-key", "tls-ca", "client-cert", "client-key"].map(
      str,
    );
    if ((cert || key) && !(cert && key && ca)) {
      throw new JetkitError(
        "JK_CLI_USAGE",
        "--tls-cert, --tls-key and --tls-ca go together: pass all three.",
      );
    }
    if ((ccert || ckey) && !(ccert && ckey && ca)) {
      throw new JetkitError("JK_CLI_USAGE", "--client-cert and --client-key need each other and --tls-ca.");
    }
    const out = calloutConfig({
      ...(str("account") ? { account: str("account")! } : {}),
      ...(str("auth-user") ? { authUser: str("auth-user")! } : {}),
      ...(str("nats") ? { servers: str("nats")! } : {}),
      ...(o["no-xkey"] ? { xkey: false } : {}),
      trusted: many(o.trusted),
      ...(cert && key && ca ? { serverTls: { certFile: cert, keyFile: key, caFile: ca } } : {}),
      ...(ccert && ckey && ca ? { clientTls: { caFile: ca, certFile: ccert, keyFile: ckey } } : {}),
    });
    const serverOut = str("server-out");
    const gatewayOut = str("gateway-out");
    if (serverOut) writeFileSync(serverOut, out.serverConfig);
    if (gatewayOut) writeFileSync(gatewayOut, out.gatewayYaml, { mode: 0o600 });
    if (ctx.json) {
      ctx.stdout.write(
        `${JSON.stringify({
          issuer: out.issuer.publicKey,
          xkey: out.xkey?.publicKey,
          account: out.account,
          authUser: out.authUser,
          ...(serverOut ? { serverOut } : { serverConfig: out.serverConfig }),
          ...(gatewayOut ? { gatewayOut } : { gatewayYaml: out.gatewayYaml }),
        })}\n`,
      );
      return ExitCode.OK;
    }
    const parts: string[] = [];
    if (!serverOut) parts.push(`# ---- nats-server.conf ----\n${out.serverConfig}`);
    else parts.push(`# nats-server block written to ${serverOut}`);
    if (!gatewayOut) parts.push(`# ---- gateway.yaml ----\n${out.gatewayYaml}`);
    else parts.push(`# gateway.yaml authCallout section written to ${gatewayOut} (mode 0600)`);
    parts.push(`# issuer ${out.issuer.publicKey}${out.xkey ? `\n# xkey   ${out.xkey.publicKey}` : ""}\n`);
    ctx.stdout.write(parts.join("\n"));
    return ExitCode.OK;
  },
};

export const gatewayCommands = [
  gatewayStart,
  gatewayCalloutConfig,
  pkiInit,
  pkiIssue,
  policyCheck,
  policyNats,
];
