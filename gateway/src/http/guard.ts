import { hasWildcard } from "@jetkit/contracts";
import type { FastifyReply, FastifyRequest } from "fastify";
import { GatewayErrorCodes, gatewayError } from "../errors.js";
import type { Identity } from "../identity.js";
import type { Action, Decision } from "../policy/evaluate.js";
import { patternProblem } from "../policy/patterns.js";
import type { GatewayContext } from "./context.js";

/** Authenticates, rate-limits and checks NATS is up: the common start of every API route. */
export function admit(
  ctx: GatewayContext,
  req: FastifyRequest,
  reply: FastifyReply,
): Identity | Promise<Identity> {
  const id = ctx.authenticate(req);
  const wait = ctx.rateLimiter.take(id.principal);
  // the local fast path stays synchronous; a shared bucket's answer is awaited
  return typeof wait === "number"
    ? admitted(ctx, reply, id, wait)
    : wait.then((w) => admitted(ctx, reply, id, w));
}

function admitted(ctx: GatewayContext, reply: FastifyReply, id: Identity, wait: number): Identity {
  if (wait > 0) {
    reply.header("retry-after", String(wait));
    throw gatewayError(
      GatewayErrorCodes.RATE_LIMITED,
      `too many requests from ${id.principal}: at most ${ctx.limits.ratePerSecond}/s (burst ${ctx.limits.rateBurst}). Retry after ${wait} s.`,
      { principal: id.principal, retry_after_s: wait },
    );
  }
  if (!ctx.natsReady()) {
    throw gatewayError(
      GatewayErrorCodes.UNAVAILABLE,
      "the gateway is not connected to NATS; nothing was published. Retry later (GET /readyz says when it is back).",
    );
  }
  return id;
}

/** Checks a subject (publish: concrete) or pattern (subscribe) from a path. */
export function checkSubject(ctx: GatewayContext, subject: string, action: Action): void {
  if (subject.length > ctx.limits.subjectLength) {
    throw gatewayError(
      GatewayErrorCodes.BAD_SUBJECT,
      `subject is ${subject.length} characters; at most ${ctx.limits.subjectLength} are accepted.`,
      { field: "subject" },
    );
  }
  const problem = patternProblem(subject);
  if (problem) {
    throw gatewayError(GatewayErrorCodes.BAD_SUBJECT, `malformed subject: ${problem}.`, { field: "subject" });
  }
  if (action === "publish" && hasWildcard(subject)) {
    throw gatewayError(
      GatewayErrorCodes.BAD_SUBJECT,
      `publish subjects must be concrete; "${subject}" has a wildcard. Publish to one event subject of the catalog.`,
      { field: "subject" },
    );
  }
}

/** Evaluates and audits the policy; throws 403 unless allowed (or dry-run). */
export function authorise(
  ctx: GatewayContext,
  req: FastifyRequest,
  id: Identity,
  action: Action,
  subject: string,
): Decision {
  const decision = ctx.decide(id.principal, action, subject);
  ctx.auditor.record({
    requestId: String(req.id),
    principal: id.principal,
    action,
    subject,
    decision,
    dryRun: ctx.dryRun && !decision.allowed,
  });
  if (!decision.allowed && !ctx.dryRun) {
    throw gatewayError(
      GatewayErrorCodes.FORBIDDEN,
      `${id.principal} may not ${action} "${subject}" (${decision.reason}; rule ${decision.rule}). Ask for a role that grants it.`,
      { action, subject, rule: decision.rule },
    );
  }
  return decision;
}

const TOKEN = /^[\x21-\x7e]{1,256}$/;

/** A single-valued, printable, space-free header (Idempotency-Key, X-Correlation-Id...), or undefined. */
export function tokenHeader(req: FastifyRequest, name: string): string | undefined {
  const raw = req.headers[name];
  if (raw === undefined) return undefined;
  if (Array.isArray(raw) || !TOKEN.test(raw)) {
    throw gatewayError(
      GatewayErrorCodes.BAD_HEADER,
      `header ${name} must appear once and be 1-256 printable ASCII characters without spaces.`,
      { field: name },
    );
  }
  return raw;
}
