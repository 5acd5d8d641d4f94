/**
 * Toxics, in Toxiproxy's vocabulary: each one changes the bytes flowing through a fault proxy in
 * one direction (`upstream` = client to server, `downstream` = server to client).
 */
export type ToxicType = "latency" | "bandwidth" | "timeout" | "reset_peer" | "slicer" | "limit_data";
export const TOXIC_TYPES: readonly ToxicType[] = [
  "latency",
  "bandwidth",
  "timeout",
  "reset_peer",
  "slicer",
  "limit_data",
];
export type Direction = "upstream" | "downstream";
export const DIRECTIONS = ["upstream", "downstream", "both"] as const;

/** A toxic to add to a proxy. */
export interface ToxicSpec {
  type: ToxicType;
  /** Which way the toxic applies. Default: `both` (Toxiproxy defaults to downstream; both is what a link fault means). */
  direction?: Direction | "both";
  /** Probability in [0, 1] that a given connection is affected, decided per connection from the seed. Default: 1. */
  toxicity?: number;
  /** Per type: latency `{ latency, jitter }` ms; bandwidth `{ rate }` KB/s; timeout `{ timeout }` ms (0 = hold until removed); reset_peer `{ timeout }` ms; slicer `{ average_size, size_variation }` bytes and `{ delay }` µs; limit_data `{ bytes }`. */
  attributes?: Record<string, number>;
}

/** The attributes each toxic type takes, with defaults (the same defaults as Toxiproxy where it has them). */
export const TOXIC_ATTRIBUTES: Record<ToxicType, Record<string, number>> = {
  latency: { latency: 0, jitter: 0 },
  bandwidth: { rate: 0 },
  timeout: { timeout: 0 },
  reset_peer: { timeout: 0 },
  slicer: { average_size: 0, size_variation: 0, delay: 0 },
  limit_data: { bytes: 0 },
};

/** A toxic as a proxy holds it: spec with defaults filled in, and an id for removal. */
export interface ActiveToxic {
  id: number;
  type: ToxicType;
  directions: Direction[];
  toxicity: number;
  attributes: Record<string, number>;
}

export function resolveToxic(id: number, spec: ToxicSpec): ActiveToxic {
  const direction = spec.direction ?? "both";
  return {
    id,
    type: spec.type,
    directions: direction === "both" ? ["upstream", "downstream"] : [direction],
    toxicity: spec.toxicity ?? 1,
    attributes: { ...TOXIC_ATTRIBUTES[spec.type], ...(spec.attributes ?? {}) },
  };
}
