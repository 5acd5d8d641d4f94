import { AsnConvert } from "@peculiar/asn1-schema";
import {
  type AttributeTypeAndValue,
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  KeyUsage,
  KeyUsageFlags,
  SubjectAlternativeName,
} from "@peculiar/asn1-x509";

/** One subjectAltName entry (`URI`, `DNS`, `email`, `IP`, `other`). */
export interface AltName {
  readonly type: "URI" | "DNS" | "email" | "IP" | "other";
  readonly value: string;
}

/** What the identity rules need from a certificate, read from its DER with an X.509 parser. */
export interface CertificateFacts {
  /** Serial number, upper-case hex. */
  readonly serial: string;
  /** The subject DN in RFC 4514 form (last RDN first), `""` for an empty subject. */
  readonly subjectDn: string;
  readonly altNames: readonly AltName[];
  /** basicConstraints cA. */
  readonly ca: boolean;
  /** The keyUsage bits, undefined without the extension. */
  readonly keyUsage: ReadonlySet<keyof typeof KeyUsageFlags> | undefined;
  /** extendedKeyUsage OIDs, undefined without the extension. */
  readonly extKeyUsage: readonly string[] | undefined;
}

export const OID_CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
export const OID_SERVER_AUTH = "1.3.6.1.5.5.7.3.1";

/** RFC 4514 §3 short names; any other attribute type is written as its dotted OID. */
const SHORT_NAMES: Record<string, string> = {
  "2.5.4.3": "CN",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "2.5.4.6": "C",
  "2.5.4.9": "STREET",
  "0.9.2342.19200300.100.1.25": "DC",
  "0.9.2342.19200300.100.1.1": "UID",
};

/** RFC 4514 §2.4: escape `"+,;<>\`, a leading space or `#`, a trailing space, and NUL. */
export function escapeDnValue(v: string): string {
  let out = "";
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (c === "\u0000") out += "\\00";
    else if ('"+,;<>\\'.includes(c)) out += `\\${c}`;
    else if ((i === 0 && (c === " " || c === "#")) || (i === v.length - 1 && c === " ")) out += `\\${c}`;
    else out += c;
  }
  return out;
}

function hex(bytes: ArrayBuffer): string {
  return Buffer.from(bytes).toString("hex");
}

function attributeText(atv: AttributeTypeAndValue): string {
  const short = SHORT_NAMES[atv.type];
  const v = atv.value;
  const text =
    v.utf8String ?? v.printableString ?? v.ia5String ?? v.teletexString ?? v.bmpString ?? v.universalString;
  // RFC 4514 §2.4: a value of a type without a short name, or not a string, is `#` + its BER hex.
  if (short && text !== undefined) return `${short}=${escapeDnValue(text)}`;
  return `${short ?? atv.type}=#${hex(AsnConvert.serialize(v))}`;
}

function extension<T>(cert: Certificate, oid: string, type: new () => T): T | undefined {
  const ext = cert.tbsCertificate.extensions?.find((e) => e.extnID === oid);
  return ext ? AsnConvert.parse(ext.extnValue, type) : undefined;
}

/** Parses a DER certificate (e.g. `X509Certificate.raw`). Throws on malformed ASN.1. */
export function certificateFacts(der: Uint8Array): CertificateFacts {
  const cert = AsnConvert.parse(der, Certificate);
  const tbs = cert.tbsCertificate;
  const subjectDn = [...tbs.subject]
    .reverse()
    .map((rdn) => [...rdn].map(attributeText).join("+"))
    .join(",");
  const san = extension(cert, id_ce_subjectAltName, SubjectAlternativeName);
  const altNames: AltName[] = [...(san ?? [])].map((g) => {
    if (g.uniformResourceIdentifier !== undefined) return { type: "URI", value: g.uniformResourceIdentifier };
    if (g.dNSName !== undefined) return { type: "DNS", value: g.dNSName };
    if (g.rfc822Name !== undefined) return { type: "email", value: g.rfc822Name };
    if (g.iPAddress !== undefined) return { type: "IP", value: g.iPAddress };
    return { type: "other", value: "" };
  });
  const bc = extension(cert, id_ce_basicConstraints, BasicConstraints);
  const ku = extension(cert, id_ce_keyUsage, KeyUsage);
  const eku = extension(cert, id_ce_extKeyUsage, ExtendedKeyUsage);
  let keyUsage: Set<keyof typeof KeyUsageFlags> | undefined;
  if (ku) {
    const bits = ku.toNumber();
    keyUsage = new Set(
      (Object.keys(KeyUsageFlags) as (keyof typeof KeyUsageFlags)[]).filter(
        (k) => Number.isNaN(Number(k)) && (bits & KeyUsageFlags[k]) !== 0,
      ),
    );
  }
  return {
    serial: hex(tbs.serialNumber).toUpperCase(),
    subjectDn,
    altNames,
    ca: bc?.cA ?? false,
    keyUsage,
    extKeyUsage: eku ? [...eku] : undefined,
  };
}
