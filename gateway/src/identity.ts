import type { X509Certificate } from "node:crypto";
import { JetkitError } from "@jetkit/contracts";
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

/** One entry of a subjectAltName extension as node prints it (`URI`, `DNS`, `IP Address`, `email`...). */
export interface AltName {
  readonly type: string;
  readonly value: string;
}

function unauthenticated(message: string, details: Record<string, unknown> = {}): JetkitError {
  return new JetkitError(GatewayErrorCodes.UNAUTHENTICATED, message, { details });
}

/**
 * Parses node's `subjectAltName` text (`DNS:a, URI:spiffe://x/y, IP Address:1.2.3.4`). Node
 * writes a value that contains a comma, quote or other special character as a JSON string
 * (`URI:"spiffe://x/a, b"`), so a value can never be split into two entries, nor two be merged.
 */
export function parseSubjectAltName(text: string | undefined): AltName[] {
  const out: AltName[] = [];
  if (!text) return out;
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(":", i);
    if (colon < 0) throw new Error(`malformed subjectAltName near "${text.slice(i, i + 20)}"`);
    const type = text.slice(i, colon);
    i = colon + 1;
    let value: string;
    if (text[i] === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      if (j >= text.length) throw new Error("unterminated quoted value in subjectAltName");
      value = JSON.parse(text.slice(i, j + 1)) as string;
      i = j + 1;
    } else {
      const end = text.indexOf(", ", i);
      value = end < 0 ? text.slice(i) : text.slice(i, end);
      i = end < 0 ? text.length : end;
    }
    out.push({ type, value });
    if (i < text.length) {
      if (text.slice(i, i + 2) !== ", ")
        throw new Error(`malformed subjectAltName near "${text.slice(i, i + 20)}"`);
      i += 2;
    }
  }
  return out;
}

const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/;

/**
 * Checks a SPIFFE ID against the SPIFFE ID spec: scheme `spiffe`, a lower-case trust domain
 * without port or user info, a path of non-empty segments (no `.`/`..`, no trailing slash), no
 * query or fragment, at most 2048 bytes. Returns its trust domain and path.
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
  if (path) {
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
 * The subject DN in RFC 4514 string form (most specific RDN first, `CN=alice,O=jetkit`), which is
 * also how nats-server's `verify_and_map` names a certificate user.
 */
export function distinguishedName(cert: X509Certificate): string {
  const rdns = cert.subject
    .split("\n")
    .filter((l) => l.length > 0)
    .map((line) => {
      const eq = line.indexOf("=");
      const key = line.slice(0, eq);
      let value = line.slice(eq + 1);
      // node prints a value with special characters as a JSON string
      if (value.startsWith('"') && value.endsWith('"')) value = JSON.parse(value) as string;
      return `${key}=${escapeDnValue(value)}`;
    });
  return rdns.reverse().join(",");
}

/** RFC 4514 §2.4 escaping. */
function escapeDnValue(v: string): string {
  let out = v.replace(/[\\,+"<>;=]/g, (c) => `\\${c}`).replace(/\u0000/g, "\\00");
  if (out.startsWith("#") || out.startsWith(" ")) out = `\\${out}`;
  if (out.endsWith(" ") && out.length > 1) out = `${out.slice(0, -1)}\\ `;
  return out;
}

/**
 * The principal of a verified client certificate. Per the X.509-SVID rules a certificate with
 * more than one URI SAN is refused, as is a CA certificate presented as a leaf; a certificate with
 * one URI SAN must carry a valid SPIFFE ID. Throws `JK_GATEWAY_UNAUTHENTICATED` naming the problem.
 */
export function identityOf(cert: X509Certificate, opts: IdentityOptions): Identity {
  const serial = cert.serialNumber;
  if (opts.source !== "dn") {
    let names: AltName[];
    try {
      names = parseSubjectAltName(cert.subjectAltName);
    } catch (err) {
      throw unauthenticated(
        `the client certificate's subjectAltName cannot be read: ${(err as Error).message}`,
      );
    }
    const uris = names.filter((n) => n.type === "URI").map((n) => n.value);
    if (uris.length > 1) {
      throw unauthenticated(
        `the client certificate has ${uris.length} URI SANs; an X.509-SVID has exactly one. Issue a certificate with a single SPIFFE ID.`,
        { serial },
      );
    }
    const uri = uris[0];
    if (uri !== undefined) {
      if (cert.ca) throw unauthenticated("a CA certificate cannot be an X.509-SVID leaf.", { serial });
      const { trustDomain } = parseSpiffeId(uri);
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
  const dn = distinguishedName(cert);
  if (!dn) throw unauthenticated("the client certificate has an empty subject and no SPIFFE ID.", { serial });
  return { principal: dn, kind: "dn", serial };
}
