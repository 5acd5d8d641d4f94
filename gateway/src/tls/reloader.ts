import { createSecureContext, type Server } from "node:tls";
import { findJetkitError } from "@jetkit/contracts";
import type { Logger } from "pino";
import { watchFiles } from "../file-watch.js";
import type { Metrics } from "../metrics.js";
import { secureContextOptions, type TlsFiles, tlsFileList } from "./material.js";

/**
 * Re-reads the TLS material and swaps the server's secure context (`tls.Server.setSecureContext`):
 * new handshakes use the new certificate, CA bundle and CRLs; established connections keep theirs
 * and are not dropped. Invalid material is refused and the current context kept.
 */
export class TlsReloader {
  readonly #server: Server;
  readonly #files: TlsFiles;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  #stop: (() => void) | undefined;
  /** Successful reloads so far. */
  reloads = 0;

  constructor(
    server: Server,
    files: TlsFiles,
    log: Logger,
    metrics: Metrics,
    watch: boolean,
    debounceMs = 200,
  ) {
    this.#server = server;
    this.#files = files;
    this.#log = log.child({ component: "tls" });
    this.#metrics = metrics;
    if (watch) this.#stop = watchFiles(tlsFileList(files), () => this.reload(), debounceMs);
  }

  /** Re-reads every file; returns true when the new material is in force. */
  reload(): boolean {
    try {
      const opts = secureContextOptions(this.#files);
      // Build it first: a key that does not match the certificate must not replace a working context.
      createSecureContext(opts);
      this.#server.setSecureContext(opts);
      this.reloads++;
      this.#metrics.inc("jetkit_gateway_tls_reloads_total", { result: "ok" });
      this.#log.info({ files: tlsFileList(this.#files) }, "tls material reloaded");
      return true;
    } catch (err) {
      this.#metrics.inc("jetkit_gateway_tls_reloads_total", { result: "refused" });
      this.#log.error(
        { err, code: findJetkitError(err)?.code },
        "tls reload refused; the current certificate, CA and CRL stay in force",
      );
      return false;
    }
  }

  close(): void {
    this.#stop?.();
  }
}
