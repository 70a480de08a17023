// The web editor's entry point: the session, the page shell and the router.
import "./style.css";
import { auth, isUnauthenticated, message } from "./api";
import { h, replace } from "./dom";
import type { User } from "./gen/gofastapi/v1/auth_pb";
import { currentUser, leaving, navigate, onNavigate, setUser, type PageContext } from "./nav";
import { loginPage, signupPage } from "./pages/auth";
import { dashboardPage, newAppPage } from "./pages/dashboard";
import { templatesPage } from "./pages/templates";
import { adminPage } from "./pages/admin";
import { accountPage } from "./pages/account";
import { databasePage } from "./pages/database";

type Page = (ctx: PageContext) => Promise<Node> | Node;

// The editor (CodeMirror) is most of the code: it loads when first opened,
// so signing in and the dashboard do not wait for it.
const editorPage: Page = async (ctx) => (await import("./pages/editor")).editorPage(ctx);
let editorFetched = false;

/** prefetchEditor loads the editor's code once the browser is idle. */
function prefetchEditor(): void {
  if (editorFetched) return;
  editorFetched = true;
  const idle = window.requestIdleCallback ?? ((f: () => void) => window.setTimeout(f, 200));
  idle(() => void import("./pages/editor"));
}

const routes: [RegExp, Page, string][] = [
  [/^\/$/, dashboardPage, "Apps"],
  [/^\/new$/, newAppPage, "New app"],
  [/^\/apps\/([^/]+)$/, editorPage, "Editor"],
  [/^\/templates$/, templatesPage, "Templates"],
  [/^\/database$/, databasePage, "Database"],
  [/^\/admin$/, adminPage, "Admin"],
  [/^\/account$/, accountPage, "Account"],
];

let leave: AbortController | undefined;

const app = document.getElementById("app")!;

function shell(u: User, active: string, content: Node): Node {
  const link = (href: string, label: string) =>
    h("a", { href, class: active === label ? "active" : "", "aria-current": active === label ? "page" : undefined }, label);
  const logout = h("button", { type: "button", class: "link", onclick: async () => {
    try {
      await auth.logout({});
    } catch (err) {
      if (!isUnauthenticated(err)) {
        alertBanner(message(err));
        return;
      }
    }
    setUser(undefined);
    navigate("/login");
  } }, "Log out");
  return h("div", { class: "layout" },
    h("a", { class: "skip", href: "#main" }, "Skip to content"),
    h("header", { class: "top" },
      h("a", { href: "/", class: "brand", "aria-label": "gofastapi home" }, "gofastapi"),
      h("nav", { "aria-label": "Main" },
        link("/", "Apps"), link("/templates", "Templates"), link("/database", "Database"),
        u.admin ? link("/admin", "Admin") : null, link("/account", "Account")),
      h("span", { class: "who" }, u.username, u.admin ? h("span", { class: "badge" }, "admin") : null),
      logout),
    h("main", { id: "main", tabindex: "-1" }, content));
}

function alertBanner(msg: string): void {
  const b = h("div", { class: "banner error", role: "alert" }, msg, h("button", { type: "button", class: "link", onclick: () => b.remove() }, "Dismiss"));
  document.body.prepend(b);
}

async function render(): Promise<void> {
  leave?.abort();
  leave = new AbortController();
  const signal = leave.signal;
  const path = location.pathname.replace(/\/+$/, "") || "/";
  const query = new URLSearchParams(location.search);
  if (path === "/login" || path === "/signup") {
    if (currentUser()) return navigate("/", true);
    document.title = path === "/login" ? "Log in · gofastapi" : "Sign up · gofastapi";
    replace(app, path === "/login" ? loginPage() : signupPage());
    return;
  }
  if (!currentUser()) {
    try {
      setUser((await auth.me({}, { signal })).user);
    } catch (err) {
      if (isUnauthenticated(err)) {
        const next = path === "/" ? "" : `?next=${encodeURIComponent(path + location.search)}`;
        return navigate("/login" + next, true);
      }
      replace(app, h("main", { class: "center" }, h("div", { class: "error", role: "alert" }, message(err)),
        h("button", { type: "button", onclick: () => void render() }, "Try again")));
      return;
    }
  }
  const u = currentUser()!;
  const route = routes.find(([re]) => re.test(path));
  if (!route) {
    replace(app, shell(u, "", h("section", null, h("h1", null, "Page not found"), h("p", null, h("a", { href: "/" }, "Back to your apps")))));
    return;
  }
  const [re, page, label] = route;
  const params = (re.exec(path) ?? []).slice(1).map(decodeURIComponent);
  document.title = `${params[0] ?? label} · gofastapi`;
  let content: Node;
  try {
    content = await page({ params, query, signal, user: u });
  } catch (err) {
    if (signal.aborted) return;
    if (isUnauthenticated(err)) {
      setUser(undefined);
      return navigate("/login", true);
    }
    content = h("section", null, h("h1", null, label), h("div", { class: "error", role: "alert" }, message(err)));
  }
  if (signal.aborted) return;
  // The editor and the new-app form belong to Apps in the navigation.
  replace(app, shell(u, label === "Editor" || label === "New app" ? "Apps" : label, content));
  prefetchEditor();
  const focus = (app.querySelector("[autofocus]") as HTMLElement | null) ?? (app.querySelector("main") as HTMLElement);
  focus?.focus({ preventScroll: true });
}

// Links inside the app navigate without reloading the page.
document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as Element).closest?.("a");
  if (!a || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !a.getAttribute("href")?.startsWith("/")) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", () => {
  leaving();
  onNavigate(() => void render());
void render();
});
window.addEventListener("beforeunload", (e) => {
  if (document.querySelector("[data-dirty=true]")) e.preventDefault();
});

onNavigate(() => void render());
void render();
