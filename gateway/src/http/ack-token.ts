import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { GatewayErrorCodes, gatewayError } from "../errors.js";

/** A short, stable id of a principal (consumer name prefix, ack token owner). */
export function principalTag(principal: string): string {
  return createHash("sha256").update(principal).digest("base64url").slice(0, 12).replace(/[-_]/g, "x");
}

/**
 * The prefix of a principal's message ids (`<scope>.<Idempotency-Key>`): the full SHA-256 of the
 * principal, so no other principal can produce it.
 */
export function idempotencyScope(principal: string): string {
  let scope = scopes.get(principal);
  if (scope === undefined) {
    scope = createHash("sha256").update(principal).digest("base64url");
    // bounded: the principals of one gateway are few; a flood of new ones only costs re-hashing
    if (scopes.size >= 10_000) scopes.clear();
    scopes.set(principal, scope);
  }
  return scope;
}

const scopes = new Map<string, string>();

/**
 * An ack token carries the JetStream reply subject of one delivery, bound to the principal that
 * fetched it and signed, so a client can neither forge an ack subject nor ack another's messages.
 */
export function signAckToken(secret: Buffer, principal: string, reply: string): string {
  const body = Buffer.from(JSON.stringify([principalTag(principal), reply])).toString("base64url");
  const mac = createHmac("sha256", secret).update(body).digest("base64url");
  return `${body}.${mac}`;
}

/** The reply subject of a token signed for `principal`; throws `JK_GATEWAY_BAD_ACK_TOKEN`. */
export function openAckToken(secret: Buffer, principal: string, token: string): string {
  const bad = (why: string) =>
    gatewayError(
      GatewayErrorCodes.BAD_ACK_TOKEN,
      `ack token rejected: ${why}. Use a token from a fetch of your own.`,
      {
        field: "token",
      },
    );
  const [body, mac, extra] = token.split(".");
  if (!body || !mac || extra !== undefined) throw bad("malformed");
  const want = createHmac("sha256", secret).update(body).digest();
  const got = Buffer.from(mac, "base64url");
  if (got.length !== want.length || !timingSafeEqual(got, want)) throw bad("bad signature");
  let tag: unknown;
  let reply: unknown;
  try {
    [tag, reply] = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as unknown[];
  } catch {
    throw bad("malformed");
  }
  if (tag !== principalTag(principal)) throw bad("it was issued to another principal");
  if (typeof reply !== "string" || !reply.startsWith("$JS.ACK.")) throw bad("malformed");
  return reply;
}
