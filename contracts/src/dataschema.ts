/**
 * `ce-dataschema` values naming a version of the contract registry (contracts/WIRE.md §4):
 * `jetkit:registry/<version>#<type>`, an absolute URI (CloudEvents: dataschema is a URI, and an
 * incompatible schema change SHOULD change it; every registered version has its own number).
 */
const REGISTRY_DATASCHEMA = /^jetkit:registry\/([1-9][0-9]{0,15})#([A-Za-z_][A-Za-z0-9_.]*)$/;

/** The `ce-dataschema` of an event of `type` encoded with registry version `version`. */
export function registryDataschema(version: number, type: string): string {
  return `jetkit:registry/${version}#${type}`;
}

/** The registry version and type a `ce-dataschema` names; undefined for any other URI (another registry's). */
export function parseRegistryDataschema(value: string): { version: number; type: string } | undefined {
  const m = REGISTRY_DATASCHEMA.exec(value);
  return m?.[1] && m[2] ? { version: Number(m[1]), type: m[2] } : undefined;
}
