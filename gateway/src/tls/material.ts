import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type { SecureContextOptions } from "node:tls";
import { JetkitError } from "@jetkit/contracts";
import { GatewayErrorCodes } from "../errors.js";

/** Where the gateway's TLS material lives. Every file is re-read on reload. */
export interface TlsFiles {
  /** Server certificate (PEM, leaf first, then intermediates). */
  cert: string;
  /** Server private key (PEM). */
  key: string;
  /** CA bundle(s) that sign client certificates (PEM). Several files are concatenated (CA rotation). */
  ca: string | readonly string[];
  /** CRL file(s) (PEM); a revoked client certificate fails the handshake. */
  crl?: string | readonly string[];
}

function list(v: string | readonly string[] | undefined): string[] {
  return v === undefined ? [] : typeof v === "string" ? [v] : [...v];
}

/** Every file of `files`, for the watcher. */
export function tlsFileList(files: TlsFiles): string[] {
  return [files.cert, files.key, ...list(files.ca), ...list(files.crl)];
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new JetkitError(
      GatewayErrorCodes.TLS,
      `cannot read the ${what} ${path}: ${(err as Error).message}. Check tls.* in the gateway config.`,
      { cause: err, details: { file: path } },
    );
  }
}

/**
 * The secure context options of the gateway: TLS 1.3 only, the server certificate, the client CA
 * bundle and CRLs. Throws `JK_GATEWAY_TLS` when a file is missing or the certificate is not PEM.
 */
export function secureContextOptions(files: TlsFiles): SecureContextOptions {
  const cert = read(files.cert, "server certificate");
  try {
    new X509Certificate(cert);
  } catch (err) {
    throw new JetkitError(GatewayErrorCodes.TLS, `${files.cert} is not a PEM certificate.`, { cause: err });
  }
  const cas = list(files.ca);
  if (cas.length === 0) {
    throw new JetkitError(
      GatewayErrorCodes.TLS,
      "tls.ca is required: the CA bundle that signs client certificates.",
    );
  }
  const crls = list(files.crl);
  return {
    minVersion: "TLSv1.3",
    cert,
    key: read(files.key, "server key"),
    ca: cas.map((f) => read(f, "CA bundle")),
    ...(crls.length > 0 ? { crl: crls.map((f) => read(f, "CRL")) } : {}),
  };
}
