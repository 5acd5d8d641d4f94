import type { X509Certificate } from "node:crypto";
import { JetkitError } from "@jetkit/contracts";
import { type CertificateFacts, certificateFacts, OID_CLIENT_AUTH } from "./certificate.js";
import { GatewayErrorCodes } from "./errors.js";

/**
 * Where the principal comes from:
 * - `spiffe-or-dn` (default): the SPIFFE ID when the certificate has a URI SAN, else the subject DN;
 * - `spiffe`: only X.509-SVIDs are accepted;
 * - `dn`: the subject DN, URI SANs are ignored.
 */
export type PrincipalSource = "spiffe-or-dn" | "spiffe" | "dn";

/** Who a client certificate says the caller is. */
export interface Identity {
  /** `spiffe://trust-domain/path` or an RFC 4514 DN such as `CN=alice,O=jetkit`. */
  readonly principal: string;
  readonly kind: "spiffe" | "dn";
  /** Serial number of the certificate (hex), for the logs. */
  readonly serial: string;
}

/** Options of {@link identityOf}. */
export interface IdentityOptions {
  source: PrincipalSource;
  /** When set, only SPIFFE IDs of these trust domains are accepted. */
  trustDomains?: readonly string[];
}

function unauthenticated(message: string, details: Record<string, unknown> = {}): JetkitError {
  return new JetkitError(GatewayErrorCodes.UNAUTHENTICATED, message, { details });
}

const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/;

/**
 * Checks a SPIFFE ID against the SPIFFE ID spec: scheme `spiffe`, a lower-case trust domain
 * without port or user info, a path of non-empty segments (no `.`/`..`, no trailing slash), no
 * query or fragment, at most 2048 bytes; and, as an X.509-SVID leaf needs (X.509-SVID §2), a path. Returns its trust domain and path.
 */
export function parseSpiffeId(id: string): { trustDomain: string; path: string } {
  const bad = (why: string) =>
    new JetkitError(GatewayErrorCodes.UNAUTHENTICATED, `"${id.slice(0, 100)}" is not a SPIFFE ID: ${why}.`);
  if (Buffer.byteLength(id) > 2048) throw bad("longer than 2048 bytes");
  if (!id.startsWith("spiffe://")) throw bad('it must start with "spiffe://" (lower-case scheme)');
  const rest = id.slice("spiffe://".length);
  const slash = rest.indexOf("/");
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? "" : rest.slice(slash);
  if (!trustDomain || !TRUST_DOMAIN.test(trustDomain)) {
    throw bad("the trust domain must be lower-case letters, digits, '.', '-' or '_' (no port, no user info)");
  }
  if (!path) throw bad("it has no path; an X.509-SVID names a workload (spiffe://trust-domain/path)");
  {
    const segments = path.slice(1).split("/");
    for (const s of segments) {
      if (!s) throw bad("the path has an empty segment or a trailing slash");
      if (s === "." || s === "..") throw bad("the path has a '.' or '..' segment");
      if (!PATH_SEGMENT.test(s)) throw bad("path segments may only use letters, digits, '.', '-' and '_'");
    }
  }
  return { trustDomain, path };
}

/**
 * The principal of a verified client certificate, read from its DER with an X.509 parser. Refused
 * (`JK_GATEWAY_UNAUTHENTICATED`, naming the problem) on every path: a CA certificate used as a
 * leaf, a keyUsage with keyCertSign or cRLSign, no extendedKeyUsage with clientAuth. For SPIFFE
 * (X.509-SVID §4, §5.2): exactly one URI SAN, a valid SPIFFE ID with a path, keyUsage present with
 * digitalSignature. Without a URI SAN (or with `source: "dn"`) the principal is the subject DN in
 * RFC 4514 form; an empty subject is refused.
 */
export function identityOf(cert: X509Certificate | Uint8Array, opts: IdentityOptions): Identity {
  let facts: CertificateFacts;
  try {
    facts = certificateFacts(cert instanceof Uint8Array ? cert : cert.raw);
  } catch (err) {
    throw unauthenticated(`the client certificate cannot be parsed as X.509: ${(err as Error).message}`);
  }
  const serial = facts.serial;
  if (facts.ca) {
    throw unauthenticated(
      "the client certificate is a CA certificate (basicConstraints CA:TRUE); a CA certificate cannot be used as a client. Issue a leaf certificate (CA:FALSE).",
      { serial },
    );
  }
  if (facts.keyUsage?.has("keyCertSign") || facts.keyUsage?.has("cRLSign")) {
    throw unauthenticated(
      "the client certificate's keyUsage allows signing certificates or CRLs (keyCertSign/cRLSign); a leaf must not. Issue it with keyUsage digitalSignature.",
      { serial },
    );
  }
  if (!facts.extKeyUsage?.includes(OID_CLIENT_AUTH)) {
    throw unauthenticated(
      `the client certificate ${facts.extKeyUsage ? "has an extendedKeyUsage without clientAuth" : "has no extendedKeyUsage extension"}; the gateway requires extendedKeyUsage clientAuth.`,
      { serial },
    );
  }
  if (opts.source !== "dn") {
    const uris = facts.altNames.filter((n) => n.type === "URI").map((n) => n.value);
    if (uris.length > 1) {
      throw unauthenticated(
        `the client certificate has ${uris.length} URI SANs; an X.509-SVID has exactly one. Issue a certificate with a single SPIFFE ID.`,
        { serial },
      );
    }
    const uri = uris[0];
    if (uri !== undefined) {
      const { trustDomain } = parseSpiffeId(uri);
      if (!facts.keyUsage?.has("digitalSignature")) {
        throw unauthenticated(
          "an X.509-SVID leaf must have keyUsage digitalSignature (X.509-SVID §4.3); this certificate has none.",
          { serial },
        );
      }
      if (opts.trustDomains && !opts.trustDomains.includes(trustDomain)) {
        throw unauthenticated(
          `trust domain "${trustDomain}" is not accepted by this gateway (accepted: ${opts.trustDomains.join(", ")}).`,
          { serial },
        );
      }
      return { principal: uri, kind: "spiffe", serial };
    }
    if (opts.source === "spiffe") {
      throw unauthenticated(
        "the client certificate has no SPIFFE ID (URI SAN) and this gateway only accepts X.509-SVIDs.",
        { serial },
      );
    }
  }
  if (!facts.subjectDn) {
    throw unauthenticated(
      "the client certificate has an empty subject and no SPIFFE ID, so it names no principal. Issue it with a subject DN or a SPIFFE ID (URI SAN).",
      { serial },
    );
  }
  return { principal: facts.subjectDn, kind: "dn", serial };
}
