import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Catalog, EventSpec } from "@jetkit/contracts";
import type { Logger } from "pino";
import type { Metrics } from "./metrics.js";
import type { Action, Decision } from "./policy/evaluate.js";

/** The subject of audit events (`jetkit.v1.AuditGatewayDecision`, stream AUDIT). */
export const AUDIT_SUBJECT = "audit.gateway.decision";

/** One authorisation decision, as logged and published. */
export interface AuditRecord {
  readonly requestId: string;
  readonly principal: string;
  readonly action: Action;
  readonly subject: string;
  readonly decision: Decision;
  readonly dryRun: boolean;
}

/** What the auditor needs to publish: the producer SDK's `publishEncoded`. */
export interface AuditPublisher {
  publishEncoded(input: {
    subject: string;
    payload: Uint8Array;
    key?: string;
    msgId?: string;
  }): Promise<unknown>;
}

/**
 * Writes every decision as one pino line and publishes it as a `jetkit.v1.AuditGatewayDecision`
 * event. Publishing does not hold up the request (the audit stream being slow must not stall
 * traffic); a failed audit publish is logged at error level and counted.
 */
export class Auditor {
  readonly #spec: EventSpec;
  readonly #log: Logger;
  readonly #publisher: AuditPublisher | undefined;
  readonly #metrics: Metrics;
  readonly #pending = new Set<Promise<unknown>>();

  constructor(catalog: Catalog, log: Logger, publisher: AuditPublisher | undefined, metrics: Metrics) {
    this.#spec = catalog.bySubject(AUDIT_SUBJECT);
    this.#log = log.child({ component: "audit" });
    this.#publisher = publisher;
    this.#metrics = metrics;
  }

  record(r: AuditRecord): void {
    const line = {
      audit: true,
      request_id: r.requestId,
      principal: r.principal,
      action: r.action,
      subject: r.subject,
      decision: r.decision.allowed ? "allow" : "deny",
      rule: r.decision.rule,
      dry_run: r.dryRun,
    };
    this.#metrics.decision(r.action, r.decision.allowed ? "allow" : "deny");
    if (r.decision.allowed) this.#log.info(line, "authorisation decision");
    else
      this.#log.warn(
        line,
        r.dryRun ? "authorisation decision (dry run: would deny)" : "authorisation decision",
      );
    if (!this.#publisher) return;
    const message = create(this.#spec.schema, {
      requestId: r.requestId,
      principal: r.principal,
      action: r.action === "publish" ? 1 : 2,
      subject: r.subject,
      decision: r.decision.allowed ? 1 : 2,
      rule: r.decision.rule,
      dryRun: r.dryRun,
      decidedAt: timestampFromDate(new Date()),
    } as never);
    const p = this.#publisher
      .publishEncoded({
        subject: AUDIT_SUBJECT,
        payload: toBinary(this.#spec.schema, message),
        key: r.principal,
        msgId: `audit-${r.requestId}-${r.action}`,
      })
      .catch((err: unknown) => {
        this.#metrics.auditFailure();
        this.#log.error({ err, request_id: r.requestId }, "audit event could not be published");
      })
      .finally(() => this.#pending.delete(p));
    this.#pending.add(p);
  }

  /** Waits for audit publishes in flight (on shutdown). */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.#pending]);
  }
}
