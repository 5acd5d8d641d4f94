import { X509Certificate } from "node:crypto";
import type { Catalog } from "@jetkit/contracts";
import { findJetkitError } from "@jetkit/contracts";
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
import { type IdentityOptions, identityOf } from "../identity.js";
import { permissionsOf } from "../policy/nats-config.js";
import { principalMatches } from "../policy/patterns.js";
import type { Policy } from "../policy/policy.js";

/** The subject nats-server sends authorization requests to. */
export const AUTH_CALLOUT_SUBJECT = "$SYS.REQ.USER.AUTH";

/** Options of {@link startAuthCallout}. */
export interface AuthCalloutOptions {
  /** A connection as one of the auth_callout `users` (they bypass the callout). */
  nc: NatsConnection;
  /** Seed (`SA...`) of the account nkey named as auth_callout `issuer`; signs the answers. */
  issuerSeed: string;
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
  /** Connections decided so far, by outcome. */
  readonly decided: { allowed: number; refused: number };
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
  const issuer: KeyPair = fromSeed(new TextEncoder().encode(opts.issuerSeed));
  const log = opts.logger.child({ component: "auth-callout" });
  const decided = { allowed: 0, refused: 0 };
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
    const claims = decode<AuthorizationRequest>(msg.string());
    const req = claims.nats as Partial<AuthorizationRequest>;
    if (!req.user_nkey || !req.server_id?.id) {
      log.warn("auth callout: dropped a request without user_nkey or server_id");
      return;
    }
    const user = fromPublic(req.user_nkey);
    const server = fromPublic(req.server_id.id);
    const respond = async (data: { jwt?: string; error?: string }) => {
      msg.respond(await encodeAuthorizationResponse(user, server, issuer, data, {}));
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
