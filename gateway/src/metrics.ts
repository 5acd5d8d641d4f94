/** A few Prometheus counters and gauges, rendered in the text exposition format (no dependency). */
export class Metrics {
  readonly #counters = new Map<string, Map<string, number>>();
  readonly #help = new Map<string, [string, "counter" | "gauge"]>();
  readonly #gauges = new Map<string, () => number>();

  constructor() {
    this.#declare("jetkit_gateway_requests_total", "HTTP requests answered, by route and status", "counter");
    this.#declare(
      "jetkit_gateway_decisions_total",
      "Authorisation decisions, by action and decision",
      "counter",
    );
    this.#declare("jetkit_gateway_published_total", "Events published to JetStream", "counter");
    this.#declare(
      "jetkit_gateway_audit_failures_total",
      "Audit events that could not be published",
      "counter",
    );
    this.#declare("jetkit_gateway_policy_reloads_total", "Policy reloads, by result", "counter");
    this.#declare("jetkit_gateway_tls_reloads_total", "TLS material reloads, by result", "counter");
  }

  #declare(name: string, help: string, type: "counter" | "gauge"): void {
    this.#help.set(name, [help, type]);
    this.#counters.set(name, new Map());
  }

  /** Adds `by` to counter `name` with `labels`. */
  inc(name: string, labels: Record<string, string | number> = {}, by = 1): void {
    const series = this.#counters.get(name);
    if (!series) throw new Error(`undeclared metric ${name}`);
    const key = Object.entries(labels)
      .map(([k, v]) => `${k}="${String(v).replace(/["\\\n]/g, "\\$&")}"`)
      .join(",");
    series.set(key, (series.get(key) ?? 0) + by);
  }

  /** Registers a gauge read at scrape time. */
  gauge(name: string, help: string, read: () => number): void {
    this.#help.set(name, [help, "gauge"]);
    this.#gauges.set(name, read);
  }

  /** The current value of a counter series (for tests and health output). */
  value(name: string, labels: Record<string, string | number> = {}): number {
    const key = Object.entries(labels)
      .map(([k, v]) => `${k}="${String(v)}"`)
      .join(",");
    return this.#counters.get(name)?.get(key) ?? 0;
  }

  /** Prometheus text exposition format 0.0.4. */
  render(): string {
    const out: string[] = [];
    for (const [name, series] of this.#counters) {
      const [help, type] = this.#help.get(name)!;
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of series) out.push(`${name}${labels ? `{${labels}}` : ""} ${v}`);
    }
    for (const [name, read] of this.#gauges) {
      const [help] = this.#help.get(name)!;
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${read()}`);
    }
    return `${out.join("\n")}\n`;
  }
}
