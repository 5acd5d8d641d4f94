/**
 * The partition of a key in a partitioned consumer group: FNV-1a (32 bit) of the key's UTF-8
 * bytes, modulo the group's partition count. Every language computes it the same way
 * (contracts/WIRE.md, "Partitioned consumer groups"), so Go and Rust members agree with this one.
 */
export function partitionOf(key: string, partitions: number): number {
  let h = 0x811c9dc5;
  const bytes = Buffer.from(key, "utf8");
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % partitions;
}
