import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { isJetkitError } from "@jetkit/contracts";
import { certificateFacts, OID_CLIENT_AUTH, OID_SERVER_AUTH } from "../src/certificate.js";
import { identityOf, type PrincipalSource } from "../src/identity.js";
import { issueClientCert } from "../src/pki/pki.js";
import { principalMatches } from "../src/policy/patterns.js";
import { forgeClientCert, LEAF_EXT, makePki, type TestPki, tempDir } from "./helpers.js";

const [BC, KU, EKU] = LEAF_EXT;

/** Adversarial and edge-case certificates: name, -subj, extensions. */
const CASES: Record<string, [string, string[]]> = {
  emptySubject: ["/", [BC, KU, EKU, "subjectAltName = DNS:client.example"]],
  caLeaf: ["/O=X/CN=root-ish", ["basicConstraints = critical, CA:true", KU, EKU]],
  caSvid: [
    "/CN=s",
    ["basicConstraints = critical, CA:true", KU, EKU, "subjectAltName = URI:spiffe://jetkit.dev/s"],
  ],
  noEku: ["/O=X/CN=noeku", [BC, KU]],
  serverOnly: ["/O=X/CN=srv", [BC, KU, "extendedKeyUsage = serverAuth"]],
  commaCn: ["/O=X/CN=ana,OU=finance,O=X", [BC, KU, EKU]],
  multiRdn: ["/O=X/CN=a+UID=b", [BC, KU, EKU]],
  specials: ['/O=X/CN=#lead\\+plus;semi<gt>"quote\\\\ back ', [BC, KU, EKU]],
  unknownAttr: ["/O=X/CN=e/emailAddress=e@x.example", [BC, KU, EKU]],
  noPath: ["/CN=np", [BC, KU, EKU, "subjectAltName = URI:spiffe://jetkit.dev"]],
  rootPath: ["/CN=rp", [BC, KU, EKU, "subjectAltName = URI:spiffe://jetkit.dev/"]],
  upperScheme: ["/CN=up", [BC, KU, EKU, "subjectAltName = URI:SPIFFE://jetkit.dev/up"]],
  svidCertSign: [
    "/CN=cs",
    [
      BC,
      "keyUsage = critical, digitalSignature, keyCertSign",
      EKU,
      "subjectAltName = URI:spiffe://jetkit.dev/cs",
    ],
  ],
  dnCrlSign: ["/O=X/CN=crl", [BC, "keyUsage = critical, digitalSignature, cRLSign", EKU]],
  svidNoKu: ["/CN=noku", [BC, EKU, "subjectAltName = URI:spiffe://jetkit.dev/noku"]],
  emailSpoof: [
    "/O=X/CN=mallory",
    [BC, KU, EKU, "subjectAltName = @alt", "[ alt ]", "email.1 = CN=bob@OU=ops,O=jetkit"],
  ],
};

describe("identity from certificates (X.509 parsed from DER)", () => {
  let dir: { dir: string; remove: () => Promise<void> };
  let pki: TestPki;
  const certs = new Map<string, X509Certificate>();

  before(async () => {
    dir = await tempDir("identity");
    pki = await makePki(join(dir.dir, "pki"));
    for (const [name, [subj, ext]] of Object.entries(CASES)) {
      const c = await forgeClientCert(pki.paths, name, subj, ext);
      certs.set(name, new X509Certificate(readFileSync(c.cert)));
    }
  });
  after(async () => {
    await dir?.remove();
  });

  const id = (name: string, source: PrincipalSource = "spiffe-or-dn") =>
    identityOf(certs.get(name)!, { source });
  const refused = (name: string, why: RegExp, source: PrincipalSource = "spiffe-or-dn") => {
    assert.throws(
      () => id(name, source),
      (err: unknown) => isJetkitError(err, "JK_GATEWAY_UNAUTHENTICATED") && why.test(err.message),
      name,
    );
  };

  test("an empty subject with only a DNS SAN is refused as unauthenticated (not a crash)", () => {
    refused("emptySubject", /empty subject/);
    refused("emptySubject", /empty subject/, "dn");
  });

  test("a CA:TRUE certificate is refused as a leaf on every path", () => {
    for (const source of ["spiffe-or-dn", "dn"] as const) refused("caLeaf", /CA certificate/, source);
    for (const source of ["spiffe-or-dn", "spiffe", "dn"] as const)
      refused("caSvid", /CA certificate/, source);
  });

  test("extendedKeyUsage clientAuth is required: none, or serverAuth only, is refused", () => {
    refused("noEku", /no extendedKeyUsage/);
    refused("serverOnly", /without clientAuth/);
  });

  test("a leaf whose keyUsage can sign certificates or CRLs is refused (X.509-SVID §5.2)", () => {
    refused("svidCertSign", /keyCertSign/);
    refused("dnCrlSign", /cRLSign/, "dn");
  });

  test("an X.509-SVID needs keyUsage digitalSignature and a SPIFFE ID with a path; the scheme is lower case", () => {
    refused("svidNoKu", /digitalSignature/);
    refused("noPath", /no path/);
    refused("rootPath", /trailing slash|no path|empty segment/);
    refused("upperScheme", /lower-case scheme/);
  });

  test("DNs are RFC 4514: escaped once, multi-valued RDNs joined with +, unknown types as #hex", () => {
    assert.equal(id("commaCn").principal, "CN=ana\\,OU=finance\\,O=X,O=X");
    assert.equal(id("multiRdn").principal, "CN=a+UID=b,O=X");
    assert.equal(id("specials").principal, 'CN=\\#lead\\+plus\\;semi\\<gt\\>\\"quote\\\\ back\\ ,O=X');
    assert.match(id("unknownAttr").principal, /^1\.2\.840\.113549\.1\.9\.1=#16[0-9a-f]+,CN=e,O=X$/);
    assert.equal(id("multiRdn").kind, "dn");
  });

  test("a CN that spells other RDNs matches neither their binding nor a * glob", () => {
    const p = id("commaCn").principal;
    assert.equal(principalMatches("CN=ana,OU=finance,O=X", p), false);
    assert.equal(principalMatches("CN=*,O=X", p), false, "* does not cross an escaped comma");
    assert.equal(principalMatches("CN=*,O=X", "CN=ana,O=X"), true);
    assert.equal(principalMatches("**", p), true);
  });

  test("an email SAN spelling another DN is not the principal: the subject DN is", () => {
    assert.equal(id("emailSpoof").principal, "CN=mallory,O=X");
  });

  test("the dev PKI issues X.509-SVIDs with serverAuth and clientAuth (X.509-SVID §4.4), DN certificates with clientAuth", async () => {
    const svid = certificateFacts(new X509Certificate(readFileSync(pki.checkout.cert)).raw);
    assert.deepEqual([...(svid.extKeyUsage ?? [])].sort(), [OID_SERVER_AUTH, OID_CLIENT_AUTH].sort());
    assert.equal(
      identityOf(new X509Certificate(readFileSync(pki.checkout.cert)), { source: "spiffe" }).principal,
      "spiffe://jetkit.dev/checkout",
    );
    const dn = await issueClientCert(pki.paths.dir, { name: "dn-only", dn: { O: "X", CN: "dn" } });
    assert.deepEqual(certificateFacts(new X509Certificate(readFileSync(dn.cert)).raw).extKeyUsage, [
      OID_CLIENT_AUTH,
    ]);
  });
});
