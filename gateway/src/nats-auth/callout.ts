import { X509Certificate } from "node:crypto";
import type { Catalog } from "@jetkit/contracts";
import { findJetkitError, JetkitError } from "@jetkit/contracts";
import {
  type AuthorizationRequest,
  decode,
  encodeAuthorizationResponse,
  encodeUser,
  fromPublic,
  fromSeed,
  type KeyPair,
} from "@nats-io/jwt";
import type { Msg, NatsConnection, Subscription } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { GatewayErrorCodes } from "../errors.js";
import { type IdentityOptions, identityOf } from "../identity.js";
import { permissionsOf } from "../policy/nats-config.js";
import { principalMatches } from "../policy/patterns.js";
import type { Policy } from "../policy/policy.js";

/** The subject nats-server sends authorization requests to. */
export const AUTH_CALLOUT_SUBJECT = "$SYS.REQ.USER.AUTH";
/** The header in which nats-server sends its curve public key when it encrypts the request. */
export const SERVER_XKEY_HEADER = "Nats-Server-Xkey";

/** Options of {@link startAuthCallout}. */
export interface AuthCalloutOptions {
  /** A connection as one of the auth_callout `users` (they bypass the callout). */
  nc: NatsConnection;
  /** Seed (`SA...`) of the account nkey named as auth_callout `issuer`; signs the answers. */
  issuerSeed: string;
  /**
   * Seed (`SX...`) of the curve key whose public key (`X...`) is the server's auth_callout `xkey`:
   * requests are decrypted with it and answers encrypted to the server's key. Without it the
   * service answers only plain requests.
   */
  xkeySeed?: string;
  /** The account the authorised clients are placed in (centralized config: its name). */
  account: string;
  /** The policy in force, read on every connect (a reload applies to the next connections). */
  policy: () => Policy;
  catalog: Catalog;
  /** The gateway's identity rules: the same code decides who a certificate is. */
  identity: IdentityOptions;
  /**
   * Principals that get a user without permission limits (the gateway's own NATS identity,
   * operators' tools). Default: none.
   */
  trusted?: (principal: string) => boolean;
  /** Durable consumers a principal may use directly (see `natsAuthorization`). Default: none. */
  durables?: (principal: string) => readonly string[];
  /** The consumers SDK's idempotency bucket. Default: `jetkit-idempotency`. */
  idempotencyBucket?: string;
  /** Lifetime of the issued user JWT, seconds; the client reconnects (and is decided again) after it. Default: 3600. */
  userJwtTtlSeconds?: number;
  logger: Logger;
}

/** A running auth callout service. */
export interface AuthCallout {
  /** Connections decided so far, by outcome; `unreadable`: requests not answered (not decryptable, not signed). */
  readonly decided: { allowed: number; refused: number; unreadable: number };
  stop(): Promise<void>;
}

/**
 * NATS auth callout (nats-server >= 2.10) with the gateway's own identity and policy code: for
 * every client connection nats-server sends the client's certificate; the service reads the
 * principal with {@link identityOf} (the same X.509 rules as the HTTPS edge), and answers with a
 * user JWT whose permissions are exactly what the policy grants that principal
 * ({@link permissionsOf}: catalog publishes, subscriptions with the implicit denies, listed
 * durables). A certificate the gateway refuses, or a principal without any role, is refused.
 */
export function startAuthCallout(opts: AuthCalloutOptions): AuthCallout {
  const issuer = seedOf(opts.issuerSeed, "A", "authCallout.issuerSeed", "an account seed (SA...)");
  const xkey = opts.xkeySeed
    ? seedOf(opts.xkeySeed, "X", "authCallout.xkeySeed", "a curve seed (SX...)")
    : undefined;
  const log = opts.logger.child({ component: "auth-callout" });
  const decided = { allowed: 0, refused: 0, unreadable: 0 };
  /** A request that cannot be read is not answered (nats-server times the client out); logged with its code. */
  const unreadable = (message: string, fields: Record<string, unknown> = {}) => {
    decided.unreadable++;
    const err = new JetkitError(GatewayErrorCodes.AUTH_CALLOUT, message, { details: fields });
    log.error({ err, code: err.code, ...fields }, message);
  };
  const sub: Subscription = opts.nc.subscribe(AUTH_CALLOUT_SUBJECT, {
    callback: (err, msg) => {
      if (err) {
        log.error({ err }, "auth callout subscription failed");
        return;
      }
      void answer(msg).catch((e: unknown) => log.error({ err: e }, "auth callout answer failed"));
    },
  });

  async function answer(msg: Msg): Promise<void> {
    const serverXkey = msg.headers?.get(SERVER_XKEY_HEADER) || undefined;
    let token: string;
    if (xkey && !serverXkey) {
      return unreadable(
        `an auth callout request arrived unencrypted while authCallout.xkeySeed is set: add xkey: ${xkey.getPublicKey()} to the server's auth_callout block`,
      );
    }
    if (!xkey && serverXkey) {
      return unreadable(
        "nats-server encrypts its auth callout requests (auth_callout xkey) but authCallout.xkeySeed is not set: give the gateway the seed of that xkey",
        { server_xkey: serverXkey },
      );
    }
    if (xkey && serverXkey) {
      let plain: Uint8Array | null = null;
      try {
        plain = xkey.open(msg.data, serverXkey);
      } catch {
        plain = null;
      }
      if (!plain) {
        return unreadable(
          `cannot decrypt an auth callout request: the server's auth_callout xkey is not ${xkey.getPublicKey()} (the public key of authCallout.xkeySeed); set one to match the other`,
          { server_xkey: serverXkey },
        );
      }
      token = new TextDecoder().decode(plain);
    } else {
      token = msg.string();
    }
    let req: Partial<AuthorizationRequest>;
    try {
      req = decode<AuthorizationRequest>(token).nats as Partial<AuthorizationRequest>;
    } catch (err) {
      return unreadable(`an auth callout request is not a valid signed JWT: ${(err as Error).message}`);
    }
    if (!req.user_nkey || !req.server_id?.id) {
      return unreadable("an auth callout request has no user_nkey or server_id");
    }
    // the key in the header is the one the server signed into the request
    if (serverXkey && req.server_id.xkey !== serverXkey) {
      return unreadable(
        "an auth callout request's Nats-Server-Xkey header differs from the signed server xkey",
        {
          server_xkey: serverXkey,
        },
      );
    }
    const user = fromPublic(req.user_nkey);
    const server = fromPublic(req.server_id.id);
    const respond = async (data: { jwt?: string; error?: string }) => {
      const jwt = await encodeAuthorizationResponse(user, server, issuer, data, {});
      msg.respond(xkey && serverXkey ? xkey.seal(new TextEncoder().encode(jwt), serverXkey) : jwt);
    };
    const refuse = async (why: string, fields: Record<string, unknown> = {}) => {
      decided.refused++;
      log.warn({ ...fields, reason: why, client: req.client_info?.host }, "nats connection refused");
      await respond({ error: why });
    };
    // the leaf of the chain nats-server verified against its ca_file
    const pem = req.client_tls?.verified_chains?.[0]?.[0];
    if (!pem) return refuse("no client certificate (the server must require one: tls { verify: true })");
    let principal: string;
    try {
      principal = identityOf(new X509Certificate(pem), opts.identity).principal;
    } catch (err) {
      return refuse(findJetkitError(err)?.message ?? (err as Error).message);
    }
    if (opts.trusted?.(principal)) {
      decided.allowed++;
      log.info({ principal, client: req.client_info?.host }, "nats connection authorised (trusted)");
      await respond({ jwt: await encodeUser(principal, user, issuer, {}, { aud: opts.account }) });
      return;
    }
    const policy = opts.policy();
    if (!policy.bindings.some((b) => b.principals.some((p) => principalMatches(p, principal)))) {
      return refuse(`${principal} has no role in the policy (default deny)`, { principal });
    }
    let perms: ReturnType<typeof permissionsOf>;
    try {
      perms = permissionsOf(policy, principal, {
        catalog: opts.catalog,
        durables: { [principal]: opts.durables?.(principal) ?? [] },
        ...(opts.idempotencyBucket ? { idempotencyBucket: opts.idempotencyBucket } : {}),
      });
    } catch (err) {
      return refuse(findJetkitError(err)?.message ?? (err as Error).message, { principal });
    }
    // nats-server: an empty allow list allows everything; deny everything explicitly instead
    const side = (p: { allow: string[]; deny: string[] }) =>
      p.allow.length === 0 ? { deny: [">"] } : { allow: p.allow, deny: p.deny };
    const jwt = await encodeUser(
      principal,
      user,
      issuer,
      { pub: side(perms.publish), sub: side(perms.subscribe) },
      {
        aud: opts.account,
        exp: Math.floor(Date.now() / 1000) + (opts.userJwtTtlSeconds ?? 3600),
      },
    );
    decided.allowed++;
    log.info({ principal, client: req.client_info?.host }, "nats connection authorised");
    await respond({ jwt });
  }

  return {
    decided,
    async stop() {
      sub.unsubscribe();
      await opts.nc.flush().catch(() => undefined);
    },
  };
}

/** Reads a seed for the callout; a wrong or malformed one is `JK_GATEWAY_CONFIG`. */
function seedOf(seed: string, prefix: "A" | "X", key: string, what: string): KeyPair {
  let kp: KeyPair | undefined;
  try {
    kp = typeof seed === "string" ? fromSeed(new TextEncoder().encode(seed)) : undefined;
  } catch {
    kp = undefined;
  }
  if (!kp?.getPublicKey().startsWith(prefix)) {
    throw new JetkitError(
      GatewayErrorCodes.CONFIG,
      `${key} must be ${what}; generate one with \`jetkit gateway callout-config\``,
      { details: { key } },
    );
  }
  return kp;
}
