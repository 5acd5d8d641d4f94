import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { JetkitError } from "@jetkit/contracts";
import { parse } from "yaml";
import { GatewayErrorCodes } from "./errors.js";
import type { GatewayConfig } from "./gateway.js";

function fail(file: string, message: string): never {
  throw new JetkitError(GatewayErrorCodes.CONFIG, `${file}: ${message}`, { details: { file } });
}

function paths(v: unknown, base: string, file: string, key: string): string | string[] | undefined {
  if (v === undefined) return undefined;
  const one = (p: unknown) => {
    if (typeof p !== "string" || !p) fail(file, `${key} must be a file path or a list of paths`);
    return isAbsolute(p) ? p : resolve(base, p);
  };
  return Array.isArray(v) ? v.map(one) : one(v);
}

/**
 * Reads a gateway config file (YAML or JSON) shaped like {@link GatewayConfig}; relative paths
 * (tls.*, policy.file) are resolved against the file's directory. Throws `JK_GATEWAY_CONFIG`.
 *
 * ```yaml
 * listen: { host: 127.0.0.1, port: 8443 }
 * admin: { host: 127.0.0.1, port: 9464 }   # or false
 * tls: { cert: pki/server.crt, key: pki/server.key, ca: pki/ca.crt, crl: pki/crl.pem }
 * identity: { source: spiffe-or-dn }
 * policy: { file: policy.yaml, dryRun: false }
 * nats: { servers: nats://127.0.0.1:4222 }
 * limits: { bodyBytes: 1048576, subjectLength: 128, ratePerSecond: 100 }
 * ```
 */
export function loadGatewayConfig(file: string): GatewayConfig {
  let data: unknown;
  try {
    data = parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new JetkitError(
      GatewayErrorCodes.CONFIG,
      `cannot read gateway config ${file}: ${(err as Error).message}`,
      {
        cause: err,
        details: { file },
      },
    );
  }
  if (typeof data !== "object" || data === null) fail(file, "the config must be a mapping");
  const c = data as Record<string, Record<string, unknown> | undefined>;
  const base = dirname(resolve(file));
  const allowed = [
    "listen",
    "admin",
    "tls",
    "identity",
    "policy",
    "nats",
    "limits",
    "ackTokenSecret",
    "authCallout",
    "sharedRateLimit",
    "reloadDebounceMs",
  ];
  for (const k of Object.keys(c))
    if (!allowed.includes(k)) fail(file, `unknown key "${k}" (allowed: ${allowed.join(", ")})`);
  const tls = c.tls;
  if (!tls?.cert || !tls.key || !tls.ca) fail(file, "tls.cert, tls.key and tls.ca are required");
  if (typeof c.policy?.file !== "string") fail(file, "policy.file is required");
  if (!c.nats?.servers) fail(file, "nats.servers is required");
  const crl = paths(tls.crl, base, file, "tls.crl");
  const config: GatewayConfig = {
    ...(c.listen ? { listen: c.listen as NonNullable<GatewayConfig["listen"]> } : {}),
    ...(c.admin !== undefined ? { admin: c.admin as unknown as NonNullable<GatewayConfig["admin"]> } : {}),
    tls: {
      cert: paths(tls.cert, base, file, "tls.cert") as string,
      key: paths(tls.key, base, file, "tls.key") as string,
      ca: paths(tls.ca, base, file, "tls.ca")!,
      ...(crl ? { crl } : {}),
      ...(typeof tls.watch === "boolean" ? { watch: tls.watch } : {}),
    },
    ...(c.identity ? { identity: c.identity as NonNullable<GatewayConfig["identity"]> } : {}),
    policy: {
      ...(c.policy as GatewayConfig["policy"]),
      file: paths(c.policy.file, base, file, "policy.file") as string,
    },
    nats: c.nats as unknown as GatewayConfig["nats"],
    ...(c.limits ? { limits: c.limits as NonNullable<GatewayConfig["limits"]> } : {}),
    ...(typeof c.ackTokenSecret === "string" ? { ackTokenSecret: c.ackTokenSecret } : {}),
    ...(c.authCallout
      ? { authCallout: c.authCallout as unknown as NonNullable<GatewayConfig["authCallout"]> }
      : {}),
    ...(c.sharedRateLimit !== undefined ? { sharedRateLimit: sharedRateLimit(c.sharedRateLimit, file) } : {}),
    ...(typeof c.reloadDebounceMs === "number" ? { reloadDebounceMs: c.reloadDebounceMs } : {}),
  };
  return config;
}

function sharedRateLimit(v: unknown, file: string): NonNullable<GatewayConfig["sharedRateLimit"]> {
  if (v === true) return {};
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    fail(file, "sharedRateLimit must be true or a mapping { bucket?, leaseTokens?, leaseMs? }");
  }
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!["bucket", "leaseTokens", "leaseMs"].includes(k))
      fail(file, `unknown key "sharedRateLimit.${k}" (allowed: bucket, leaseTokens, leaseMs)`);
  if (o.bucket !== undefined && (typeof o.bucket !== "string" || !/^[-\w]{1,64}$/.test(o.bucket)))
    fail(file, "sharedRateLimit.bucket must be 1-64 letters, digits, '_' or '-'");
  for (const k of ["leaseTokens", "leaseMs"] as const)
    if (o[k] !== undefined && (!Number.isInteger(o[k]) || (o[k] as number) < 1))
      fail(file, `sharedRateLimit.${k} must be a positive integer`);
  return o as NonNullable<GatewayConfig["sharedRateLimit"]>;
}
