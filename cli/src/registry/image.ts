import { createHash } from "node:crypto";
import { create, type DescFile, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { type Catalog, type CatalogProblem, inspectImage, JetkitError } from "@jetkit/contracts";
import { RegistryErrorCodes } from "./errors.js";

/** The content address of an image: `sha256-<hex of the image bytes>`, also its object name. */
export function imageDigest(bytes: Uint8Array): string {
  return `sha256-${createHash("sha256").update(bytes).digest("hex")}`;
}

/** An image read as a catalog, with the catalog rules it breaks (reported by the push, not thrown). */
export interface ReadImage {
  readonly bytes: Uint8Array;
  readonly digest: string;
  readonly catalog: Catalog;
  readonly problems: readonly CatalogProblem[];
}

/**
 * Reads image bytes as a jetkit catalog. Throws `JK_REGISTRY_IMAGE_INVALID` for bytes that are not
 * a FileDescriptorSet, an image without jetkit's options, or one that declares no event: such an
 * image cannot be checked and no SDK could use it.
 */
export function readImage(bytes: Uint8Array, what: string): ReadImage {
  let inspected: ReturnType<typeof inspectImage>;
  try {
    inspected = inspectImage(bytes);
  } catch (err) {
    throw new JetkitError(
      RegistryErrorCodes.IMAGE_INVALID,
      `${what} is not a jetkit contracts image (${(err as Error).message}). Build one with 'buf build <contracts module> --exclude-imports --as-file-descriptor-set -o FILE' (or 'jetkit contracts generate') and push that.`,
      { cause: err, details: { what } },
    );
  }
  if (inspected.catalog.events.length === 0) {
    throw new JetkitError(
      RegistryErrorCodes.IMAGE_INVALID,
      `${what} declares no jetkit event (no message has option (jetkit.v1.event)): it is not a team's contracts. Push the image of your contracts module, whose events carry (jetkit.v1.event) = { subject: ... }.`,
      { details: { what } },
    );
  }
  return { bytes, digest: imageDigest(bytes), ...inspected };
}

/**
 * The image with every import it needs (google/protobuf, buf/validate, jetkit/v1), dependencies
 * first: buf reads an image only when it is complete, and images are pushed with --exclude-imports.
 */
export function completeImage(catalog: Catalog): Uint8Array {
  const files: DescFile[] = [];
  const seen = new Set<string>();
  const visit = (f: DescFile) => {
    if (seen.has(f.name)) return;
    seen.add(f.name);
    for (const d of f.dependencies) visit(d);
    files.push(f);
  };
  for (const f of catalog.registry.files) visit(f);
  return toBinary(
    FileDescriptorSetSchema,
    create(FileDescriptorSetSchema, { file: files.map((f) => f.proto) }),
  );
}
