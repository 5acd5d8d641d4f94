import {
  type Attributes,
  type Counter,
  type Histogram,
  type Meter,
  metrics as otel,
} from "@opentelemetry/api";
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { type DataPoint, MeterProvider } from "@opentelemetry/sdk-metrics";

/** Options of {@link Metrics}. */
export interface MetricsOptions {
  /**
   * Also register the provider as the process's global OpenTelemetry meter provider (when none is
   * registered yet), so the producer SDK's own `messaging.*` instruments are exported too.
   * Default: true.
   */
  global: boolean;
}

const SCOPE = "@jetkit/gateway";

/**
 * A monotonic counter of the request path, summed here by a string key and reported to the SDK
 * as an observable counter at collection: per request it costs a map lookup, not the SDK's
 * attribute hashing. Same exported series as a synchronous counter.
 */
class HotCounter {
  readonly #points = new Map<string, { attrs: Attributes; n: number }>();

  constructor(meter: Meter, name: string, description: string) {
    meter.createObservableCounter(name, { description }).addCallback((result) => {
      for (const p of this.#points.values()) result.observe(p.n, p.attrs);
    });
  }

  add(key: string, attrs: () => Attributes): void {
    const p = this.#points.get(key);
    if (p) p.n++;
    else this.#points.set(key, { attrs: attrs(), n: 1 });
  }
}

/**
 * The gateway's metrics, recorded with the OpenTelemetry metrics SDK and exposed in the
 * Prometheus text format by the OpenTelemetry Prometheus exporter (served by the admin listener).
 * Names become Prometheus names (`.` to `_`), counters with `_total`; durations are in seconds.
 */
export class Metrics {
  readonly provider: MeterProvider;
  readonly #exporter: PrometheusExporter;
  readonly #requests: HotCounter;
  readonly #duration: Histogram;
  readonly #decisions: HotCounter;
  readonly #published: HotCounter;
  readonly #auditFailures: Counter;
  readonly #policyReloads: Counter;
  readonly #tlsReloads: Counter;
  readonly #expiries = new Map<string, () => number | undefined>();

  constructor(opts: Partial<MetricsOptions> = {}) {
    this.#exporter = new PrometheusExporter({ preventServerStart: true });
    this.provider = new MeterProvider({ readers: [this.#exporter] });
    if (opts.global ?? true) otel.setGlobalMeterProvider(this.provider);
    const meter = this.provider.getMeter(SCOPE);
    this.#requests = new HotCounter(
      meter,
      "jetkit.gateway.requests",
      "HTTP requests answered, by route, method, status and error code",
    );
    this.#duration = meter.createHistogram("jetkit.gateway.request.duration", {
      description: "Time from the request's arrival to its answer, by route and outcome",
      unit: "s",
      advice: {
        explicitBucketBoundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      },
    });
    this.#decisions = new HotCounter(
      meter,
      "jetkit.gateway.decisions",
      "Authorisation decisions, by action and decision",
    );
    this.#published = new HotCounter(
      meter,
      "jetkit.gateway.published",
      "Events published to JetStream, by subject",
    );
    this.#auditFailures = meter.createCounter("jetkit.gateway.audit.failures", {
      description: "Audit events that could not be published",
    });
    this.#policyReloads = meter.createCounter("jetkit.gateway.policy.reloads", {
      description: "Policy reloads, by result",
    });
    this.#tlsReloads = meter.createCounter("jetkit.gateway.tls.reloads", {
      description: "TLS material reloads, by result",
    });
    meter
      .createObservableGauge("jetkit.gateway.certificate.expiry", {
        description: "Seconds until a certificate of the gateway expires (negative: expired), by certificate",
        unit: "s",
      })
      .addCallback((result) => {
        for (const [certificate, read] of this.#expiries) {
          const at = read();
          if (at !== undefined) result.observe((at - Date.now()) / 1000, { certificate });
        }
      });
  }

  /** One answered request: `outcome` is `ok` or the `JK_GATEWAY_*` code. */
  request(route: string, method: string, status: number, outcome: string, seconds: number): void {
    this.#requests.add(`${route}\n${method}\n${status}\n${outcome}`, () => ({
      route,
      method,
      status,
      outcome,
    }));
    this.#duration.record(seconds, { route, outcome });
  }

  decision(action: string, decision: "allow" | "deny"): void {
    this.#decisions.add(`${action}\n${decision}`, () => ({ action, decision }));
  }

  published(subject: string): void {
    this.#published.add(subject, () => ({ subject }));
  }

  auditFailure(): void {
    this.#auditFailures.add(1);
  }

  policyReload(result: "ok" | "refused"): void {
    this.#policyReloads.add(1, { result });
  }

  tlsReload(result: "ok" | "refused"): void {
    this.#tlsReloads.add(1, { result });
  }

  /** Observes `notAfter()` (ms since the epoch) of a certificate as `jetkit_gateway_certificate_expiry_seconds`. */
  certificateExpiry(certificate: string, notAfter: () => number | undefined): void {
    this.#expiries.set(certificate, notAfter);
  }

  /** The Prometheus text exposition of every instrument of the provider. */
  async render(): Promise<string> {
    const { resourceMetrics } = await this.#exporter.collect();
    return new PrometheusSerializer().serialize(resourceMetrics);
  }

  /** The sum of a counter's points whose attributes include `attrs` (OpenTelemetry name), for tests and health output. */
  async value(name: string, attrs: Attributes = {}): Promise<number> {
    const { resourceMetrics } = await this.#exporter.collect();
    let sum = 0;
    for (const scope of resourceMetrics.scopeMetrics) {
      for (const m of scope.metrics) {
        if (m.descriptor.name !== name) continue;
        for (const p of m.dataPoints as DataPoint<unknown>[]) {
          if (Object.entries(attrs).every(([k, v]) => p.attributes[k] === v) && typeof p.value === "number") {
            sum += p.value;
          }
        }
      }
    }
    return sum;
  }

  async close(): Promise<void> {
    await this.provider.shutdown();
  }
}
