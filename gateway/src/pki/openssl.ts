import { execFile } from "node:child_process";
import { JetkitError } from "@jetkit/contracts";
import { PkiErrorCodes } from "../errors.js";

/** Runs `openssl <args>` in `cwd`; throws `JK_PKI_OPENSSL` with openssl's stderr on failure. */
export function openssl(args: string[], cwd: string): Promise<string> {
  const bin = process.env.JETKIT_OPENSSL ?? "openssl";
  return new Promise((resolve, reject) => {
    execFile(bin, args, { cwd, timeout: 30_000, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      if (err) {
        reject(
          new JetkitError(
            PkiErrorCodes.OPENSSL,
            `openssl ${args[0]} failed: ${String(stderr).trim() || err.message}. Is openssl (>= 1.1.1) on PATH (or JETKIT_OPENSSL set)?`,
            { cause: err, details: { args } },
          ),
        );
        return;
      }
      resolve(String(stdout));
    });
  });
}
