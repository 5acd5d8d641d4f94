/** Parses `250ms`, `5s`, `2m` or a number of ms; undefined when malformed. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === "number" && Number.isFinite(value) && value >= 0) return value;
  if (typeof value !== "string") return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2] ?? "ms";
  return unit === "ms" ? n : unit === "s" ? n * 1000 : n * 60_000;
}
