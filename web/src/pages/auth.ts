// Sign up and log in.
import { auth, message } from "../api";
import { busy, errorBox, field, h } from "../dom";
import { navigate, setUser } from "../nav";

function nextPath(): string {
  const next = new URLSearchParams(location.search).get("next") ?? "/";
  // Only a path on this site, never another origin.
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

function form(title: string, intro: string, fields: HTMLElement[], submit: string, footer: Node,
  action: (data: FormData) => Promise<void>): HTMLElement {
  const err = errorBox();
  const button = h("button", { type: "submit", class: "primary" }, submit);
  const f = h("form", { class: "auth-form", "aria-label": title, novalidate: false, onsubmit: async (e: Event) => {
    e.preventDefault();
    err.clear();
    try {
      await busy(button, `${submit}…`, () => action(new FormData(f)));
    } catch (e2) {
      err.show(message(e2));
    }
  } }, h("h1", null, title), h("p", { class: "muted" }, intro), fields, err, button, h("p", { class: "muted" }, footer));
  return h("main", { class: "center", id: "main" }, h("div", { class: "brand big" }, "gofastapi"), f);
}

export function loginPage(): HTMLElement {
  return form("Log in", "Write a FastAPI app, deploy it, get a URL.",
    [
      field("Username", h("input", { name: "username", autocomplete: "username", required: true, autofocus: true })),
      field("Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    ],
    "Log in", h("span", null, "New here? ", h("a", { href: "/signup" + location.search }, "Create an account")),
    async (d) => {
      const res = await auth.login({ username: String(d.get("username")).trim(), password: String(d.get("password")) });
      setUser(res.user);
      navigate(nextPath(), true);
    });
}

export function signupPage(): HTMLElement {
  return form("Create your account", "The first account of a platform becomes its admin.",
    [
      field("Username", h("input", { name: "username", autocomplete: "username", required: true, autofocus: true, pattern: "[a-z0-9_\\-]{3,32}" }),
        "3-32 characters: a-z, 0-9, _ and -"),
      field("Email (optional)", h("input", { name: "email", type: "email", autocomplete: "email" })),
      field("Password", h("input", { name: "password", type: "password", autocomplete: "new-password", required: true, minlength: 8 }),
        "At least 8 characters"),
    ],
    "Sign up", h("span", null, "Have an account? ", h("a", { href: "/login" + location.search }, "Log in")),
    async (d) => {
      const res = await auth.signup({
        username: String(d.get("username")).trim(), email: String(d.get("email") ?? "").trim(), password: String(d.get("password")),
      });
      setUser(res.user);
      navigate(nextPath(), true);
    });
}
