import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { JetkitError } from "@jetkit/contracts";
import { PkiErrorCodes } from "../errors.js";
import { parseSpiffeId } from "../identity.js";
import { openssl } from "./openssl.js";

/**
 * A development PKI in one directory, driven by `openssl ca` (its index.txt database gives
 * serials, revocation and CRLs for free; no ASN.1 is written by hand here):
 *
 * ```
 * <dir>/ca.crt ca.key          the CA
 * <dir>/server.crt server.key  the gateway's server certificate (SAN 127.0.0.1, localhost)
 * <dir>/crl.pem                the current CRL
 * <dir>/clients/<name>.crt/.key client certificates
 * <dir>/.ca/                   openssl ca database (index.txt, serial, crlnumber, openssl.cnf)
 * ```
 */
export interface PkiPaths {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly crl: string;
}

/** Options of {@link initPki}. */
export interface InitPkiOptions {
  /** Common name of the CA. Default: `jetkit dev CA`. */
  caName: string;
  /** DNS names and IP addresses of the server certificate. Default: `["127.0.0.1", "localhost"]`. */
  serverHosts: readonly string[];
  /** Validity of the CA and server certificate, in days. Default: 365. */
  days: number;
  /** Replace an existing CA in `dir`. Default: false (refuse with `JK_PKI_EXISTS`). */
  force: boolean;
}

/** A principal to put in a client certificate: a SPIFFE ID (URI SAN), a subject DN, or both. */
export interface PrincipalSpec {
  /** File name of the certificate under `clients/` (letters, digits, `.`, `_`, `-`). */
  name: string;
  /** `spiffe://trust-domain/path`, written as the (only) URI SAN. */
  spiffeId?: string;
  /** Subject DN attributes in order, e.g. `{ O: "jetkit", CN: "alice" }`. Default: `{ CN: name }`. */
  dn?: Readonly<Record<string, string>>;
  /** Extra URI SANs (only to build invalid test certificates: an SVID has exactly one). */
  extraUris?: readonly string[];
}

/** Options of {@link issueClientCert}. */
export interface IssueOptions {
  /** Validity in days from now. Default: 30. Ignored when both dates are given. */
  days: number;
  /** Start of validity (`notBefore`); e.g. a future date for a not-yet-valid certificate. */
  notBefore: Date;
  /** End of validity (`notAfter`); e.g. a past date for an expired certificate. */
  notAfter: Date;
  /**
   * Extended key usage. Default: `serverAuth, clientAuth` for an X.509-SVID (X.509-SVID §4.4: both
   * when the extension is present), `clientAuth` otherwise. `serverAuth` alone builds a
   * wrong-usage certificate.
   */
  extendedKeyUsage: "clientAuth" | "serverAuth" | "serverAuth, clientAuth";
}

/** A certificate issued by the dev PKI. */
export interface IssuedCert {
  readonly name: string;
  readonly cert: string;
  readonly key: string;
  /** Serial number, upper-case hex as openssl prints it. */
  readonly serial: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const DN_KEY = /^[A-Za-z][A-Za-z0-9]{0,15}$/;

/** The paths of the PKI in `dir` (nothing is created). */
export function pkiPaths(dir: string): PkiPaths {
  const d = resolve(dir);
  return {
    dir: d,
    caCert: join(d, "ca.crt"),
    caKey: join(d, "ca.key"),
    serverCert: join(d, "server.crt"),
    serverKey: join(d, "server.key"),
    crl: join(d, "crl.pem"),
  };
}

function caConfig(dir: string): string {
  // `preserve = yes` keeps the DN order of the request; `unique_subject = no` lets tests issue
  // several certificates for one principal (rotation).
  return `[ ca ]
default_ca = jetkit_ca

[ jetkit_ca ]
dir = ${dir}
database = $dir/.ca/index.txt
serial = $dir/.ca/serial
crlnumber = $dir/.ca/crlnumber
new_certs_dir = $dir/.ca/newcerts
certificate = $dir/ca.crt
private_key = $dir/ca.key
default_md = sha256
default_days = 30
default_crl_days = 30
preserve = yes
unique_subject = no
copy_extensions = none
policy = any_policy
email_in_dn = no

[ any_policy ]
countryName = optional
stateOrProvinceName = optional
localityName = optional
organizationName = optional
organizationalUnitName = optional
commonName = optional
emailAddress = optional
domainComponent = optional

[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = unused

[ ca_ext ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
`;
}

async function newKey(path: string, cwd: string): Promise<void> {
  await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path], cwd);
}

/** `/O=jetkit/CN=alice` from DN attributes (escaping `/`, `\\` and `+` as `openssl -subj` wants). */
function subjArg(dn: Readonly<Record<string, string>>): string {
  const parts = Object.entries(dn).map(([k, v]) => {
    if (!DN_KEY.test(k)) {
      throw new JetkitError(PkiErrorCodes.BAD_PRINCIPAL, `DN attribute "${k}" is not an attribute name.`);
    }
    if (v.length === 0 || /[\u0000-\u001f]/.test(v)) {
      throw new JetkitError(
        PkiErrorCodes.BAD_PRINCIPAL,
        `DN attribute ${k} must be non-empty text without control characters.`,
      );
    }
    return `/${k}=${v.replace(/[\\/+]/g, (c) => `\\${c}`)}`;
  });
  if (parts.length === 0)
    throw new JetkitError(PkiErrorCodes.BAD_PRINCIPAL, "a DN needs at least one attribute.");
  return parts.join("");
}

/** `YYYYMMDDHHMMSSZ` as `openssl ca -startdate/-enddate` wants. */
function asn1Time(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, "").slice(0, 14)}Z`;
}

async function requireCa(p: PkiPaths): Promise<void> {
  if (!existsSync(p.caCert) || !existsSync(join(p.dir, ".ca", "openssl.cnf"))) {
    throw new JetkitError(
      PkiErrorCodes.NOT_FOUND,
      `no dev CA in ${p.dir}: run \`jetkit pki init ${p.dir}\` (initPki) first.`,
      { details: { dir: p.dir } },
    );
  }
}

async function sign(
  p: PkiPaths,
  csr: string,
  out: string,
  extensions: string,
  validity: { days?: number; notBefore?: Date; notAfter?: Date },
): Promise<string> {
  const extFile = `${out}.ext`;
  await writeFile(extFile, `[ ext ]\n${extensions}\n`);
  const args = ["ca", "-batch", "-notext", "-config", join(p.dir, ".ca", "openssl.cnf"), "-in", csr];
  args.push("-out", out, "-extfile", extFile, "-extensions", "ext");
  if (validity.notBefore) args.push("-startdate", asn1Time(validity.notBefore));
  if (validity.notAfter) args.push("-enddate", asn1Time(validity.notAfter));
  else args.push("-days", String(validity.days ?? 30));
  try {
    await openssl(args, p.dir);
  } finally {
    await rm(extFile, { force: true });
  }
  const serial = await openssl(["x509", "-in", out, "-noout", "-serial"], p.dir);
  return serial.trim().replace(/^serial=/, "");
}

/**
 * Creates a CA, a server certificate for the gateway and an empty CRL in `dir`. Refuses to
 * overwrite an existing CA unless `force`.
 */
export async function initPki(dir: string, opts: Partial<InitPkiOptions> = {}): Promise<PkiPaths> {
  const p = pkiPaths(dir);
  if (existsSync(p.caCert) && !opts.force) {
    throw new JetkitError(
      PkiErrorCodes.EXISTS,
      `${p.caCert} already exists: keep it, or pass force (--force) to create a new CA (every issued certificate stops being trusted).`,
      { details: { dir: p.dir } },
    );
  }
  const db = join(p.dir, ".ca");
  await rm(db, { recursive: true, force: true });
  await mkdir(join(db, "newcerts"), { recursive: true });
  await mkdir(join(p.dir, "clients"), { recursive: true });
  await writeFile(join(db, "index.txt"), "");
  await writeFile(join(db, "index.txt.attr"), "unique_subject = no\n");
  await writeFile(join(db, "serial"), `${randomSerial()}\n`);
  await writeFile(join(db, "crlnumber"), "1000\n");
  await writeFile(join(db, "openssl.cnf"), caConfig(p.dir));
  const days = opts.days ?? 365;
  await newKey(p.caKey, p.dir);
  // Self-signed CA with explicit CA extensions (req -x509 with -extensions from our config).
  await openssl(
    [
      "req",
      "-config",
      join(db, "openssl.cnf"),
      "-new",
      "-x509",
      "-key",
      p.caKey,
      "-subj",
      subjArg({ O: "jetkit", CN: opts.caName ?? "jetkit dev CA" }),
      "-days",
      String(days),
      "-extensions",
      "ca_ext",
      "-out",
      p.caCert,
    ],
    p.dir,
  );
  await issueServerCert(dir, { hosts: opts.serverHosts ?? ["127.0.0.1", "localhost"], days });
  await generateCrl(dir);
  return p;
}

function randomSerial(): string {
  // A random start makes serials of two dev CAs (e.g. the "unknown CA" of a test) differ.
  return Array.from({ length: 8 }, () => Math.floor(Math.random() * 256))
    .map((b, i) => (i === 0 ? (b & 0x3f) | 0x10 : b).toString(16).padStart(2, "0"))
    .join("")
    .toUpperCase();
}

/**
 * Issues (or re-issues, for rotation) the server certificate in `server.crt`/`server.key`, or in
 * `<name>.crt`/`.key` when `name` is given.
 */
export async function issueServerCert(
  dir: string,
  opts: { hosts?: readonly string[]; days?: number; name?: string } = {},
): Promise<IssuedCert> {
  const p = pkiPaths(dir);
  await requireCa(p);
  const name = opts.name ?? "server";
  if (!NAME.test(name)) throw new JetkitError(PkiErrorCodes.BAD_PRINCIPAL, `"${name}" is not a file name.`);
  const hosts = opts.hosts ?? ["127.0.0.1", "localhost"];
  const san = hosts.map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(", ");
  const key = join(p.dir, `${name}.key.new`);
  const csr = join(p.dir, `${name}.csr`);
  const crt = join(p.dir, `${name}.crt.new`);
  await newKey(key, p.dir);
  await openssl(
    ["req", "-new", "-key", key, "-subj", subjArg({ O: "jetkit", CN: hosts[0] ?? name }), "-out", csr],
    p.dir,
  );
  const serial = await sign(
    p,
    csr,
    crt,
    `basicConstraints = critical, CA:false\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\nsubjectAltName = ${san}`,
    { days: opts.days ?? 365 },
  );
  await rm(csr, { force: true });
  // Replace key and certificate as late as possible so a watcher never sees a half-written pair.
  const finalKey = join(p.dir, `${name}.key`);
  const finalCrt = join(p.dir, `${name}.crt`);
  await writeFile(finalKey, await readFile(key));
  await writeFile(finalCrt, await readFile(crt));
  await rm(key, { force: true });
  await rm(crt, { force: true });
  return { name, cert: finalCrt, key: finalKey, serial };
}

/**
 * Issues a client certificate for `principal` under `clients/<name>.crt` and `.key`. With a
 * SPIFFE ID the certificate carries it as its only URI SAN (an X.509-SVID); the DN defaults to
 * `CN=<name>`.
 */
export async function issueClientCert(
  dir: string,
  principal: PrincipalSpec,
  opts: Partial<IssueOptions> = {},
): Promise<IssuedCert> {
  const p = pkiPaths(dir);
  await requireCa(p);
  if (!NAME.test(principal.name)) {
    throw new JetkitError(
      PkiErrorCodes.BAD_PRINCIPAL,
      `certificate name "${principal.name}" must be 1-64 letters, digits, ".", "_" or "-".`,
    );
  }
  const uris = [...(principal.spiffeId ? [principal.spiffeId] : []), ...(principal.extraUris ?? [])];
  if (principal.spiffeId) {
    try {
      parseSpiffeId(principal.spiffeId);
    } catch (err) {
      throw new JetkitError(PkiErrorCodes.BAD_PRINCIPAL, (err as Error).message, { cause: err });
    }
  }
  for (const u of uris) {
    if (/[,\s\u0000-\u001f]/.test(u)) {
      throw new JetkitError(
        PkiErrorCodes.BAD_PRINCIPAL,
        `URI "${u}" must not contain commas, spaces or control characters.`,
      );
    }
  }
  await mkdir(join(p.dir, "clients"), { recursive: true });
  const key = join(p.dir, "clients", `${principal.name}.key`);
  const csr = join(p.dir, "clients", `${principal.name}.csr`);
  const crt = join(p.dir, "clients", `${principal.name}.crt`);
  await newKey(key, p.dir);
  await openssl(
    [
      "req",
      "-new",
      "-utf8",
      "-key",
      key,
      "-subj",
      subjArg(principal.dn ?? { CN: principal.name }),
      "-out",
      csr,
    ],
    p.dir,
  );
  const ext = [
    "basicConstraints = critical, CA:false",
    "keyUsage = critical, digitalSignature",
    `extendedKeyUsage = ${opts.extendedKeyUsage ?? (principal.spiffeId ? "serverAuth, clientAuth" : "clientAuth")}`,
  ];
  if (uris.length > 0) ext.push(`subjectAltName = ${uris.map((u) => `URI:${u}`).join(", ")}`);
  const validity: { days?: number; notBefore?: Date; notAfter?: Date } = { days: opts.days ?? 30 };
  if (opts.notBefore) validity.notBefore = opts.notBefore;
  if (opts.notAfter) validity.notAfter = opts.notAfter;
  else if (opts.notBefore)
    validity.notAfter = new Date(opts.notBefore.getTime() + (opts.days ?? 30) * 86_400_000);
  const serial = await sign(p, csr, crt, ext.join("\n"), validity);
  await rm(csr, { force: true });
  return { name: principal.name, cert: crt, key, serial };
}

/** Revokes the client certificate `clients/<name>.crt` and rewrites the CRL. */
export async function revokeClientCert(dir: string, name: string): Promise<string> {
  const p = pkiPaths(dir);
  await requireCa(p);
  const crt = join(p.dir, "clients", `${name}.crt`);
  if (!NAME.test(name) || !existsSync(crt)) {
    throw new JetkitError(
      PkiErrorCodes.NOT_FOUND,
      `no client certificate "${name}" in ${join(p.dir, "clients")}.`,
    );
  }
  await openssl(["ca", "-batch", "-config", join(p.dir, ".ca", "openssl.cnf"), "-revoke", crt], p.dir);
  return generateCrl(dir);
}

/** Writes the CRL of every revoked certificate to `crl.pem` and returns its path. */
export async function generateCrl(dir: string): Promise<string> {
  const p = pkiPaths(dir);
  await requireCa(p);
  const tmp = `${p.crl}.new`;
  await openssl(
    ["ca", "-batch", "-config", join(p.dir, ".ca", "openssl.cnf"), "-gencrl", "-out", tmp],
    p.dir,
  );
  await writeFile(p.crl, await readFile(tmp));
  await rm(tmp, { force: true });
  return p.crl;
}
