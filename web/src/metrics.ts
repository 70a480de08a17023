// Per-app health and traffic (MetricsService) for the dashboard and the
// editor's Metrics panel.
import { metrics } from "./api";
import type { App } from "./gen/gofastapi/v1/apps_pb";
import { HealthStatus } from "./gen/gofastapi/v1/metrics_pb";

/** Health is what the dashboard shows of an app's last 24 hours. */
export interface Health {
  status: "live" | "idle" | "error";
  dot: "green" | "yellow" | "red" | "unknown";
  dotText: string;
  requests?: number;
  errors?: number;
}

const dots: Record<number, Health["dot"]> = {
  [HealthStatus.GREEN]: "green", [HealthStatus.YELLOW]: "yellow", [HealthStatus.RED]: "red", [HealthStatus.IDLE]: "unknown",
};

/** appHealth returns the app's health and its requests and errors of the last 24 h. */
export async function appHealth(a: App, signal: AbortSignal): Promise<Health | undefined> {
  if (!a.deployedVersion) return undefined;
  const [health, stats] = await Promise.all([
    metrics.getHealth({ idOrName: a.id }, { signal }),
    metrics.getAppStats({ idOrName: a.id, minutes: 1 }, { signal }),
  ]);
  const s = stats.last24h;
  const status = health.status === HealthStatus.RED ? "error" : health.status === HealthStatus.IDLE ? "idle" : "live";
  return {
    status,
    dot: dots[health.status] ?? "unknown",
    dotText: `${HealthStatus[health.status]?.toLowerCase() ?? "unknown"}: ${health.reason}`,
    requests: Number(s?.requests ?? 0n),
    errors: Number((s?.status4xx ?? 0n) + (s?.status5xx ?? 0n)),
  };
}


