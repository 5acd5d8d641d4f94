/**
 * The one error type of jetkit's boundaries. Every error a user can meet has a stable `code`
 * (listed with its fix in docs/errors.md; a test keeps the two in step) and a message that says
 * what was wrong and what to do.
 */
export class JetkitError extends Error {
  override name = "JetkitError";
  /** Stable, documented code, e.g. `JK_CONTRACT_VIOLATION`. */
  readonly code: string;
  /** Structured facts about the failure (field, rule, subject, …), safe to log. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: string,
    message: string,
    opts: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.details = opts.details ?? {};
  }

  override toString(): string {
    return `${this.name} [${this.code}]: ${this.message}`;
  }
}

/** True when `err` (or anything on its `cause` chain) is a JetkitError, optionally with `code`. */
export function isJetkitError(err: unknown, code?: string): err is JetkitError {
  const found = findJetkitError(err);
  return found !== undefined && (code === undefined || found.code === code);
}

/** The first JetkitError on the cause chain of `err`. */
export function findJetkitError(err: unknown): JetkitError | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 16; depth++) {
    if (e instanceof JetkitError) return e;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Error codes of the contracts kit (catalog, wire, validation). */
export const ContractErrorCodes = {
  /** The buf image could not be read or a catalog rule is broken. */
  CATALOG_INVALID: "JK_CATALOG_INVALID",
  /** A message type is not an event of the catalog. */
  UNKNOWN_TYPE: "JK_CONTRACT_UNKNOWN_TYPE",
  /** A subject names no event of the catalog. */
  UNKNOWN_SUBJECT: "JK_CONTRACT_UNKNOWN_SUBJECT",
  /** An event breaks its contract's field rules. */
  VIOLATION: "JK_CONTRACT_VIOLATION",
  /** Bytes or JSON could not be decoded as the contract's message. */
  UNDECODABLE: "JK_CONTRACT_UNDECODABLE",
  /** Headers of a received message break contracts/WIRE.md. */
  WIRE_HEADERS: "JK_WIRE_HEADERS",
  /** A structured-mode event (content-type application/cloudevents+json) that cannot be read. */
  WIRE_STRUCTURED: "JK_WIRE_STRUCTURED",
} as const;
export type ContractErrorCode = (typeof ContractErrorCodes)[keyof typeof ContractErrorCodes];
