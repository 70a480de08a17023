// Navigation and session state shared by the pages (kept apart from
// main.ts so pages do not import the module that imports them).
import type { User } from "./gen/gofastapi/v1/auth_pb";

/** PageContext is what a page is rendered with; signal aborts when the user leaves it. */
export interface PageContext {
  params: string[];
  query: URLSearchParams;
  signal: AbortSignal;
  user: User;
}

let user: User | undefined;
let renderer: () => void = () => {};
let beforeLeave: (() => boolean) | undefined;

/** currentUser returns the signed-in user, if known. */
export function currentUser(): User | undefined {
  return user;
}

/** setUser records the session's user (after login or signup; undefined after logout). */
export function setUser(u: User | undefined): void {
  user = u;
}

/** onNavigate sets what renders the current location. */
export function onNavigate(f: () => void): void {
  renderer = f;
}

/** setBeforeLeave lets a page veto leaving it (unsaved changes): f returns false to stay. */
export function setBeforeLeave(f: (() => boolean) | undefined): void {
  beforeLeave = f;
}

/** navigate shows path, adding it to the history unless replaceState is set. */
export function navigate(path: string, replaceState = false): void {
  if (beforeLeave && !beforeLeave()) return;
  beforeLeave = undefined;
  if (replaceState) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  renderer();
}

/** leaving clears the page's veto (the page is going away anyway). */
export function leaving(): void {
  beforeLeave = undefined;
}
