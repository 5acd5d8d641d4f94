import { type Catalog, type EventSpec, JetkitError, parseRegistryDataschema } from "@jetkit/contracts";
import type { NatsConnection } from "@nats-io/nats-core";
import { RegistryErrorCodes } from "./errors.js";
import { imageDigest, readImage } from "./image.js";
import { RegistryStore } from "./store.js";

/** An event type found in a registered version. */
export interface ResolvedType {
  readonly version: number;
  readonly catalog: Catalog;
  readonly spec: EventSpec;
}

/**
 * Resolves `ce-dataschema` values (`jetkit:registry/<version>#<type>`) against the registry of
 * the connected cluster: one fetch of a version's record and image the first time it is named,
 * then from memory. Throws `JK_REGISTRY_VERSION_UNKNOWN` for a version the registry does not
 * hold or that does not declare the type; returns undefined for a URI of another form.
 */
export class RegistryResolver {
  readonly #nc: NatsConnection;
  readonly #versions = new Map<number, Promise<Catalog>>();
  #store: Promise<RegistryStore> | undefined;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
  }

  /** How many versions were fetched (each once). */
  get fetched(): number {
    return this.#versions.size;
  }

  async resolve(dataschema: string): Promise<ResolvedType | undefined> {
    const named = parseRegistryDataschema(dataschema);
    if (!named) return undefined;
    const catalog = await this.catalog(named.version);
    const spec = catalog.findByType(named.type);
    if (!spec) {
      throw new JetkitError(
        RegistryErrorCodes.VERSION_UNKNOWN,
        `ce-dataschema ${dataschema}: registry version ${named.version} declares no event ${named.type}; the producer stamps a version its contracts were not pushed as. Set the producer's registryVersion to the version 'jetkit contracts push' printed for its contracts.`,
        { details: { dataschema, version: named.version, type: named.type } },
      );
    }
    return { version: named.version, catalog, spec };
  }

  /** The catalog of a registered version, fetched once. */
  catalog(version: number): Promise<Catalog> {
    let found = this.#versions.get(version);
    if (!found) {
      found = this.#fetch(version);
      // A failed fetch is not cached: the version may be pushed (or the cluster reachable) later.
      found.catch(() => this.#versions.delete(version));
      this.#versions.set(version, found);
    }
    return found;
  }

  async #fetch(version: number): Promise<Catalog> {
    this.#store ??= RegistryStore.open(this.#nc);
    const store = await this.#store;
    const record = await store.version(version);
    return readImage(await store.image(record), `registry version ${version}'s image`).catalog;
  }
}

/**
 * The registered version whose image is exactly `bytes` (the newest if pushed more than once):
 * the `registryVersion` of a producer that encodes with these contracts. Throws
 * `JK_REGISTRY_VERSION_UNKNOWN` when they were never pushed.
 */
export async function versionOfImage(nc: NatsConnection, bytes: Uint8Array): Promise<number> {
  const digest = imageDigest(bytes);
  const versions = await (await RegistryStore.open(nc)).versions();
  const found = versions.filter((v) => v.digest === digest).at(-1);
  if (found) return found.version;
  throw new JetkitError(
    RegistryErrorCodes.VERSION_UNKNOWN,
    `these contracts (${digest}) are not registered${versions.length > 0 ? ` (the registry holds versions 1 to ${versions.at(-1)?.version})` : ""}: push them with 'jetkit contracts push' first, then use the version it prints.`,
    { details: { digest } },
  );
}
