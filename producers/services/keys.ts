/** How keys are drawn from the key space. */
export type KeyDistribution = "uniform" | "zipf";

/** Options of {@link createKeyPicker}. */
export interface KeySpaceOptions {
  /** Number of distinct keys. */
  size: number;
  /** `uniform`: every key equally likely. `zipf`: key k has weight 1/k^skew (a few hot keys). Default: uniform. */
  distribution?: KeyDistribution;
  /** Zipf exponent; larger is hotter. Default: 1.1. */
  skew?: number;
  /** Random source in [0, 1). Default: Math.random. */
  random?: () => number;
  /** Distinguishes the key spaces of different services (first UUID group). Default: 0. */
  namespace?: number;
}

/**
 * The UUID of key `index` in namespace `ns`: stable across runs, so a drill can compare what a
 * producer sent with what a consumer saw per key.
 */
export function keyUuid(index: number, ns = 0): string {
  const hex = index.toString(16).padStart(12, "0");
  const space = ns.toString(16).padStart(8, "0");
  return `${space}-0000-4000-8000-${hex}`;
}

/** Returns a function that draws a key (a UUID) from the key space. */
export function createKeyPicker(opts: KeySpaceOptions): () => string {
  const size = Math.max(1, Math.floor(opts.size));
  const random = opts.random ?? Math.random;
  const ns = opts.namespace ?? 0;
  if ((opts.distribution ?? "uniform") === "uniform") {
    return () => keyUuid(Math.floor(random() * size), ns);
  }
  // Cumulative weights of 1/k^s, searched by bisection: O(log n) per draw.
  const skew = opts.skew ?? 1.1;
  const cdf = new Float64Array(size);
  let sum = 0;
  for (let k = 0; k < size; k++) {
    sum += 1 / (k + 1) ** skew;
    cdf[k] = sum;
  }
  return () => {
    const x = random() * sum;
    let lo = 0;
    let hi = size - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return keyUuid(lo, ns);
  };
}
