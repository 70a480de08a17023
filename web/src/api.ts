// The platform API, as typed Connect clients over the browser's fetch.
//
// The browser authenticates with the session cookie that Login and Signup
// set (HttpOnly: no script sees the token). The platform accepts that
// cookie only on requests from its own origin that carry a header a
// cross-site page cannot send; the Connect protocol's
// Connect-Protocol-Version header, which every call here carries, is one.
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import type { DescService } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { AuthService } from "./gen/gofastapi/v1/auth_pb";
import { AppService, ValidationErrorSchema, type ValidationError } from "./gen/gofastapi/v1/apps_pb";
import { TemplateService } from "./gen/gofastapi/v1/templates_pb";
import { AdminService } from "./gen/gofastapi/v1/admin_pb";
import { MetricsService } from "./gen/gofastapi/v1/metrics_pb";
import { DatabaseService } from "./gen/gofastapi/v1/database_pb";
import { AssistantService } from "./gen/gofastapi/v1/assistant_pb";

const transport = createConnectTransport({
  baseUrl: window.location.origin,
  fetch: (input, init) => globalThis.fetch(input, { ...init, credentials: "same-origin" }),
});

function client<T extends DescService>(s: T): Client<T> {
  return createClient(s, transport);
}

export const auth = client(AuthService);
export const apps = client(AppService);
export const templates = client(TemplateService);
export const admin = client(AdminService);
export const metrics = client(MetricsService);
export const databases = client(DatabaseService);
export const assistant = client(AssistantService);

/** isUnauthenticated reports whether err means the session is missing or over. */
export function isUnauthenticated(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.Unauthenticated;
}

/** isAbort reports whether err is the cancellation of a call we aborted. */
export function isAbort(err: unknown): boolean {
  if (err instanceof ConnectError) return err.code === Code.Canceled;
  return err instanceof DOMException && err.name === "AbortError";
}

/** problemsOf returns the file/line problems attached to a failed call. */
export function problemsOf(err: unknown): ValidationError[] {
  if (!(err instanceof ConnectError)) return [];
  return err.findDetails(ValidationErrorSchema);
}

/**
 * message turns any error into a sentence a user can act on. The server's
 * messages already say which file, line or limit; only transport failures
 * need words of our own.
 */
export function message(err: unknown): string {
  if (err instanceof ConnectError) {
    switch (err.code) {
      case Code.Unauthenticated:
        // Login's refusal is about the password; any other is a session
        // that is missing or over.
        if (/wrong username or password/i.test(err.rawMessage)) return "Wrong username or password.";
        return "Your session has ended. Log in again.";
      case Code.Unavailable:
        if (/fetch|network/i.test(err.rawMessage)) {
          return "The platform cannot be reached. Check your connection and that the server is running, then try again.";
        }
        break;
      case Code.DeadlineExceeded:
        return "The platform took too long to answer. Try again.";
      case Code.Internal:
      case Code.Unknown:
        return err.rawMessage ? `Something went wrong on the server: ${err.rawMessage}` : "Something went wrong on the server. Try again.";
    }
    return capitalize(err.rawMessage || err.message);
  }
  if (err instanceof Error) return capitalize(err.message);
  return String(err);
}

function capitalize(s: string): string {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

/** date converts an optional protobuf timestamp. */
export function date(t: Timestamp | undefined): Date | undefined {
  return t ? timestampDate(t) : undefined;
}

/** ago says how long ago t was, in the largest whole unit. */
export function ago(t: Timestamp | Date | undefined): string {
  const d = t instanceof Date ? t : date(t);
  if (!d) return "never";
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 45) return "just now";
  const units: [number, string][] = [[60, "minute"], [3600, "hour"], [86400, "day"], [2592000, "month"], [31536000, "year"]];
  let unit = units[0];
  for (const u of units) if (s >= u[0]) unit = u;
  const n = Math.round(s / unit[0]);
  return `${n} ${unit[1]}${n === 1 ? "" : "s"} ago`;
}

/** bytes formats a size in B, KB, MB or GB. */
export function bytes(n: number | bigint): string {
  let v = Number(n);
  for (const u of ["B", "KB", "MB", "GB"]) {
    if (v < 1024 || u === "GB") return u === "B" ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${u}`;
    v /= 1024;
  }
  return `${v} B`;
}

/** packageList names installed packages with their versions: "python-dateutil 2.9.0, six 1.16.0". */
export function packageList(ps: { name: string; version: string }[]): string {
  return ps.map((p) => (p.version ? `${p.name} ${p.version}` : p.name)).join(", ");
}

const enc = new TextEncoder();
const dec = new TextDecoder();
export const utf8 = (s: string): Uint8Array => enc.encode(s);
export const text = (b: Uint8Array): string => dec.decode(b);
