import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { createSecureContext, type Server } from "node:tls";
import { findJetkitError } from "@jetkit/contracts";
import type { Logger } from "pino";
import { watchFiles } from "../file-watch.js";
import type { Metrics } from "../metrics.js";
import { secureContextOptions, type TlsFiles, tlsFileList } from "./material.js";

function notAfterOf(file: string): number | undefined {
  try {
    return new Date(new X509Certificate(readFileSync(file)).validTo).getTime();
  } catch {
    return undefined;
  }
}

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
  /** When the server certificate in force expires, ms since the epoch. */
  serverNotAfter: number | undefined;

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
    this.serverNotAfter = notAfterOf(files.cert);
    if (watch) this.#stop = watchFiles(tlsFileList(files), () => this.reload(), { debounceMs });
  }

  /** Re-reads every file; returns true when the new material is in force. */
  reload(): boolean {
    try {
      const opts = secureContextOptions(this.#files);
      // Build it first: a key that does not match the certificate must not replace a working context.
      createSecureContext(opts);
      this.#server.setSecureContext(opts);
      this.serverNotAfter = notAfterOf(this.#files.cert);
      this.reloads++;
      this.#metrics.tlsReload("ok");
      this.#log.info({ files: tlsFileList(this.#files) }, "tls material reloaded");
      return true;
    } catch (err) {
      this.#metrics.tlsReload("refused");
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
