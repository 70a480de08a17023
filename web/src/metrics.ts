// Per-app health and traffic for the dashboard. Filled from MetricsService
// once the platform has it; until then every app's health is unknown.
import type { App } from "./gen/gofastapi/v1/apps_pb";

/** Health is what the dashboard shows of an app's last 24 hours. */
export interface Health {
  status: "live" | "idle" | "error";
  dot: "green" | "yellow" | "red" | "unknown";
  dotText: string;
  requests?: number;
  errors?: number;
}

/** appHealth returns the app's health, or undefined when the platform does not report it. */
export async function appHealth(_a: App, _signal: AbortSignal): Promise<Health | undefined> {
  return undefined;
}
