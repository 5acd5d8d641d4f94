import { readFileSync } from "node:fs";
import { type Catalog, findJetkitError, JetkitError } from "@jetkit/contracts";
import type { Logger } from "pino";
import { PolicyErrorCodes } from "../errors.js";
import { watchFiles } from "../file-watch.js";
import { type Action, type Decision, explain } from "./evaluate.js";
import { type Policy, parsePolicy } from "./policy.js";

/** Reads and parses a policy file; throws `JK_POLICY_UNREADABLE` or `JK_POLICY_INVALID`. */
export function loadPolicyFile(file: string): Policy {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new JetkitError(
      PolicyErrorCodes.UNREADABLE,
      `cannot read policy file ${file}: ${(err as Error).message}. Check the path (policy.file) and permissions.`,
      { cause: err, details: { file } },
    );
  }
  return parsePolicy(text, file);
}

/** Options of {@link PolicyStore}. */
export interface PolicyStoreOptions {
  /** The policy file (YAML). */
  file: string;
  catalog?: Catalog;
  logger: Logger;
  /** Reload when the file changes. Default: true. */
  watch?: boolean;
  /** Reload on SIGHUP. Default: true. */
  sighup?: boolean;
  /** Debounce of file change events, ms. Default: 200. */
  debounceMs?: number;
  /** Slow poll of the file's content, ms (0: none). Default: 10000. */
  pollMs?: number;
  /** Told the result of every reload (metrics). */
  onReload?: (result: "ok" | "refused") => void;
}

/** The policy in force, reloaded on file change or SIGHUP; an invalid new policy is refused and the previous one kept. */
export class PolicyStore {
  #policy: Policy;
  #opts: PolicyStoreOptions;
  #stopWatch: (() => void) | undefined;
  #onHup = () => this.reload();
  /** Count of successful loads (the first one included), for tests and metrics. */
  loads = 1;
  /** The last reload error, cleared by a successful reload. */
  lastError: JetkitError | undefined;

  constructor(opts: PolicyStoreOptions) {
    this.#opts = opts;
    this.#policy = loadPolicyFile(opts.file);
    if (opts.watch ?? true)
      this.#stopWatch = watchFiles([opts.file], () => this.reload(), {
        debounceMs: opts.debounceMs ?? 200,
        ...(opts.pollMs !== undefined ? { pollMs: opts.pollMs } : {}),
      });
    if (opts.sighup ?? true) process.on("SIGHUP", this.#onHup);
  }

  get policy(): Policy {
    return this.#policy;
  }

  /** Re-reads the file. Returns true when the new policy is in force. */
  reload(): boolean {
    try {
      this.#policy = loadPolicyFile(this.#opts.file);
      this.loads++;
      this.lastError = undefined;
      this.#opts.logger.info({ policy_file: this.#opts.file }, "policy reloaded");
      this.#opts.onReload?.("ok");
      return true;
    } catch (err) {
      this.lastError = findJetkitError(err);
      this.#opts.logger.error(
        { policy_file: this.#opts.file, err, code: this.lastError?.code },
        "policy reload refused; the previous policy stays in force",
      );
      this.#opts.onReload?.("refused");
      return false;
    }
  }

  decide(principal: string, action: Action, subject: string): Decision {
    return explain(
      this.#policy,
      principal,
      action,
      subject,
      this.#opts.catalog ? { catalog: this.#opts.catalog } : {},
    );
  }

  close(): void {
    this.#stopWatch?.();
    process.off("SIGHUP", this.#onHup);
  }
}
