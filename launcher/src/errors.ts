/** The closed set of codes a {@link LauncherError} carries. */
export const LauncherErrorCodes = {
  /** The nats-server binary could not be started (not installed, not executable). */
  SERVER_MISSING: "JK_NATS_SERVER_MISSING",
  /** nats-server started but exited, or did not become ready in time. */
  SERVER_FAILED: "JK_NATS_SERVER_FAILED",
} as const;

export type LauncherErrorCode = (typeof LauncherErrorCodes)[keyof typeof LauncherErrorCodes];

/** An error of the launcher, with a stable `JK_*` code and a message that says what to do. */
export class LauncherError extends Error {
  override readonly name = "LauncherError";
  readonly code: LauncherErrorCode;

  constructor(code: LauncherErrorCode, message: string, opts?: ErrorOptions) {
    super(message, opts);
    this.code = code;
  }
}

/** True when `err` (or an error in its `cause` chain) says the nats-server binary is missing. */
export function isServerMissing(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) {
    if ((e as { code?: unknown }).code === LauncherErrorCodes.SERVER_MISSING) return true;
  }
  return false;
}
