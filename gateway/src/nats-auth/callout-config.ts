import { randomBytes } from "node:crypto";
import { JetkitError } from "@jetkit/contracts";
import { createAccount, createCurve } from "@nats-io/jwt";
import { stringify } from "yaml";
import { GatewayErrorCodes } from "../errors.js";

/** Options of {@link calloutConfig}. */
export interface CalloutConfigOptions {
  /** The account authorised clients are placed in (JetStream enabled). Default: `APP`. */
  account?: string;
  /** The user the gateway's callout service connects as (bypasses the callout). Default: `auth`. */
  authUser?: string;
  /** Its password. Default: 32 random bytes, base64url. */
  authPassword?: string;
  /** The URL(s) the gateway's callout service connects to. Default: `nats://127.0.0.1:4222`. */
  servers?: string | string[];
  /** Encrypt requests and answers with a curve key (`xkey`). Default: true. */
  xkey?: boolean;
  /** Principals given a user without limits (operators' tools, other gateways' NATS identities). */
  trusted?: string[];
  /** Durables each principal may use directly. */
  durables?: Record<string, string[]>;
  /** The server's `tls {}` block (client certificates are required: the callout reads them). */
  serverTls?: { certFile: string; keyFile: string; caFile: string };
  /** The TLS files of the gateway's callout connection (the server requires a client certificate). */
  clientTls?: { caFile: string; certFile: string; keyFile: string };
}

/** What {@link calloutConfig} generates: fresh keys and both config pieces. */
export interface CalloutConfig {
  /** The issuer account nkey (`A...` public, `SA...` seed). */
  issuer: { publicKey: string; seed: string };
  /** The curve key (`X...` public, `SX...` seed), unless `xkey: false`. */
  xkey: { publicKey: string; seed: string } | undefined;
  authUser: string;
  authPassword: string;
  account: string;
  /** nats-server config: accounts, system account, `authorization { auth_callout { ... } }` (and `tls {}`). */
  serverConfig: string;
  /** The gateway config's `authCallout` section (YAML, holds the seeds: keep it secret). */
  gatewayYaml: string;
}

const NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

function bad(message: string): never {
  throw new JetkitError(GatewayErrorCodes.CONFIG, message);
}

/**
 * Generates what a nats-server and the gateway need to serve NATS auth callout from the gateway:
 * a new issuer account nkey, a new curve key (xkey), the auth user's password, the server's
 * `authorization { auth_callout { ... } }` block with its accounts, and the gateway's
 * `authCallout` section. Throws `JK_GATEWAY_CONFIG` for a malformed account or user name.
 */
export function calloutConfig(opts: CalloutConfigOptions = {}): CalloutConfig {
  const account = opts.account ?? "APP";
  const authUser = opts.authUser ?? "auth";
  if (!NAME.test(account) || ["AUTH", "SYS", "$G"].includes(account)) {
    bad(
      `account "${account}" must be a letter then letters, digits, "_" or "-", and not AUTH or SYS (the callout's own accounts)`,
    );
  }
  if (!NAME.test(authUser)) bad(`auth user "${authUser}" must be a letter then letters, digits, "_" or "-"`);
  const authPassword = opts.authPassword ?? randomBytes(32).toString("base64url");
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  const a = createAccount();
  const issuer = { publicKey: a.getPublicKey(), seed: text(a.getSeed()) };
  const x = opts.xkey === false ? undefined : createCurve();
  const xkey = x ? { publicKey: x.getPublicKey(), seed: text(x.getSeed()) } : undefined;
  const q = (s: string) => JSON.stringify(s);
  const t = opts.serverTls;
  const serverConfig = [
    "# NATS auth callout served by the jetkit gateway (jetkit gateway callout-config)",
    t
      ? `tls { cert_file: ${q(t.certFile)}, key_file: ${q(t.keyFile)}, ca_file: ${q(t.caFile)}, verify: true }`
      : "# tls { cert_file: ..., key_file: ..., ca_file: ..., verify: true }   # required: the callout reads the client certificate",
    "accounts {",
    `  AUTH { users: [ { user: ${q(authUser)}, password: ${q(authPassword)} } ] }`,
    `  ${account} { jetstream: enabled }`,
    "  SYS {}",
    "}",
    "system_account: SYS",
    "authorization {",
    "  auth_callout {",
    `    issuer: ${issuer.publicKey}`,
    `    users: [ ${q(authUser)} ]`,
    "    account: AUTH",
    ...(xkey ? [`    xkey: ${xkey.publicKey}`] : []),
    "  }",
    "}",
    "",
  ].join("\n");
  const section = {
    authCallout: {
      nats: {
        servers: opts.servers ?? "nats://127.0.0.1:4222",
        user: authUser,
        pass: authPassword,
        ...(opts.clientTls ? { tls: opts.clientTls } : {}),
      },
      issuerSeed: issuer.seed,
      ...(xkey ? { xkeySeed: xkey.seed } : {}),
      account,
      ...(opts.trusted?.length ? { trusted: opts.trusted } : {}),
      ...(opts.durables && Object.keys(opts.durables).length ? { durables: opts.durables } : {}),
    },
  };
  const gatewayYaml = [
    "# merge into gateway.yaml; it holds the issuer and xkey seeds: keep it secret",
    ...(opts.clientTls
      ? []
      : [
          "# add authCallout.nats.tls: { caFile, certFile, keyFile }: the server verifies client certificates",
        ]),
    stringify(section),
  ].join("\n");
  return { issuer, xkey, authUser, authPassword, account, serverConfig, gatewayYaml };
}
