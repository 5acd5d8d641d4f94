import type { StreamConfig } from "@nats-io/jetstream";
import { JetkitError } from "../errors.js";
import type { ManagedStreamConfig } from "./config.js";
import { StreamsErrorCodes } from "./errors.js";
import { formatPlan } from "./format.js";
import {
  managerOf,
  planStreams,
  type StreamAction,
  type StreamPlan,
  type StreamSource,
  type StreamsOptions,
  type StreamsTarget,
} from "./plan.js";

/** What `applyStreams` did to one stream. */
export interface AppliedStream {
  readonly name: string;
  readonly action: Exclude<StreamAction, "unchanged" | "refused">;
  /** Messages deleted with the stream (recreate only). */
  readonly droppedMessages?: number;
}

/** The plan that was applied and what it changed. */
export interface ApplyResult {
  readonly plan: StreamPlan;
  /** Streams created, updated or recreated, in catalog order; empty when nothing changed. */
  readonly applied: readonly AppliedStream[];
}

const toServer = (c: ManagedStreamConfig): Partial<StreamConfig> & { name: string } => ({ ...c });

/**
 * Makes the server's streams match the catalog: plans, then creates, updates or (with
 * `allowDestructive`) deletes and recreates. Idempotent: a second run changes nothing. When the
 * plan holds a refused stream, nothing at all is applied and `JK_STREAMS_DESTRUCTIVE` (or
 * `JK_STREAMS_CONFLICT`) is thrown with the plan in `details.plan`.
 */
export async function applyStreams(
  target: StreamsTarget,
  source: StreamSource,
  opts: StreamsOptions = {},
): Promise<ApplyResult> {
  const jsm = await managerOf(target);
  const plan = await planStreams(jsm, source, opts);
  const refused = plan.entries.filter((e) => e.action === "refused");
  if (refused.length > 0) {
    const conflict = refused.some((e) => e.overridable === false);
    throw new JetkitError(
      conflict ? StreamsErrorCodes.CONFLICT : StreamsErrorCodes.DESTRUCTIVE,
      conflict
        ? `refusing to apply: ${refused.length} stream(s) collide with streams the contracts do not manage; nothing was changed.\n${formatPlan(plan)}`
        : `refusing to apply: ${refused.length} stream(s) would lose data; nothing was changed. Re-run with allowDestructive (--allow-destructive) if losing it is intended.\n${formatPlan(plan)}`,
      { details: { plan, refused: refused.map((e) => e.name) } },
    );
  }
  const applied: AppliedStream[] = [];
  for (const entry of plan.entries) {
    const { name, action, config } = entry;
    try {
      if (action === "create") {
        await jsm.streams.add(toServer(config));
        applied.push({ name, action });
      } else if (action === "update") {
        const { name: _, retention: __, storage: ___, ...update } = config;
        await jsm.streams.update(name, update);
        applied.push({ name, action });
      } else if (action === "recreate") {
        // Count what is dropped at the moment of deletion, not when the plan was made.
        const messages = (await jsm.streams.info(name)).state.messages;
        await jsm.streams.delete(name);
        await jsm.streams.add(toServer(config));
        applied.push({ name, action, droppedMessages: messages });
      }
    } catch (err) {
      throw new JetkitError(
        StreamsErrorCodes.APPLY_FAILED,
        `the server refused to ${action} stream ${name}: ${(err as Error).message}. Streams before it in the plan were applied (${applied.map((a) => a.name).join(", ") || "none"}); fix the cause and apply again.`,
        { cause: err, details: { stream: name, action, applied } },
      );
    }
  }
  return { plan, applied };
}
