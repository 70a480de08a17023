// The dashboard (the user's apps) and the new-app form.
import { ago, apps, message, templates, utf8 } from "../api";
import { busy, errorBox, field, h } from "../dom";
import { AppMode, Framework, type App } from "../gen/gofastapi/v1/apps_pb";
import { TemplateScope } from "../gen/gofastapi/v1/templates_pb";
import { navigate, type PageContext } from "../nav";
import { appHealth, type Health } from "../metrics";

/** statusOf is the app's state in one word, as the dashboard shows it. */
export function statusOf(a: App, health?: Health): { label: string; kind: string } {
  if (a.deploying) return { label: "deploying", kind: "deploying" };
  if (!a.deployedVersion) return { label: "not deployed", kind: "idle" };
  if (health?.status === "error") return { label: "error", kind: "error" };
  if (health?.status === "idle") return { label: "idle", kind: "idle" };
  return { label: "live", kind: "live" };
}

export async function dashboardPage(ctx: PageContext): Promise<Node> {
  const res = await apps.listApps({}, { signal: ctx.signal });
  const list = [...res.apps].sort((a, b) => a.name.localeCompare(b.name));
  const header = h("div", { class: "page-head" },
    h("h1", null, "Your apps"),
    h("a", { href: "/new", class: "button primary" }, "New app"));
  if (list.length === 0) {
    return h("section", null, header,
      h("div", { class: "empty" },
        h("p", null, "No apps yet. Start from a blank FastAPI file or a template; it is live in a second."),
        h("p", null, h("a", { href: "/new", class: "button primary" }, "Create your first app"), " ",
          h("a", { href: "/templates", class: "button" }, "Browse templates"))));
  }
  const grid = h("ul", { class: "cards", "aria-label": "Apps" });
  for (const a of list) {
    const card = appCard(a);
    grid.appendChild(card.el);
    void appHealth(a, ctx.signal).then(card.update, () => {});
  }
  return h("section", null, header, grid);
}

function appCard(a: App): { el: HTMLElement; update: (m: Health | undefined) => void } {
  const st = statusOf(a);
  const pill = h("span", { class: `pill ${st.kind}`, "data-status": st.label }, st.label);
  const dot = h("span", { class: "dot unknown", title: "Health: not checked yet", "aria-label": "Health: not checked yet" });
  const figures = h("span", { class: "figures muted" });
  const el = h("li", { class: "card app-card", "data-app": a.name },
    h("div", { class: "card-head" }, dot, h("a", { href: `/apps/${encodeURIComponent(a.name)}`, class: "app-name" }, a.name), pill),
    h("p", { class: "muted desc" }, a.description || (a.framework === Framework.FASTHTML ? "FastHTML app" : "FastAPI app")),
    h("div", { class: "card-foot" },
      h("span", { class: "muted" }, a.deployedAt ? `Deployed ${ago(a.deployedAt)}` : "Never deployed"),
      figures,
      a.deployedVersion ? h("span", { class: "links" },
        h("a", { href: a.url, target: "_blank", rel: "noopener" }, "Open"),
        h("a", { href: a.url + "/docs", target: "_blank", rel: "noopener" }, "/docs")) : null));
  const update = (m: Health | undefined) => {
    if (!m) return;
    const s = statusOf(a, m);
    pill.className = `pill ${s.kind}`;
    pill.textContent = s.label;
    pill.dataset.status = s.label;
    dot.className = `dot ${m.dot}`;
    dot.title = dot.ariaLabel = `Health: ${m.dotText}`;
    figures.textContent = m.requests === undefined ? "" : `${m.requests} requests · ${m.errors} errors (24 h)`;
  };
  return { el, update };
}

const starter = `from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def root():
    return {"message": "Hello from gofastapi"}
`;

export async function newAppPage(ctx: PageContext): Promise<Node> {
  const tmpl = await templates.listTemplates({ scope: TemplateScope.ALL }, { signal: ctx.signal });
  const chosen = ctx.query.get("template") ?? "";
  const err = errorBox();
  const kinds: [string, string, string][] = [
    ["single", "Single file", "One app.py with FastAPI: the quickest start."],
    ["multi-fastapi", "Multi-file FastAPI", "app.py, routes.py, models.py, services.py, helpers.py"],
    ["multi-fasthtml", "Multi-file FastHTML", "app.py, routes.py, models.py, services.py, components.py"],
    ["template", "From a template", "A working app to change: notes, TODO, auth, kanban and more."],
  ];
  const select = h("select", { name: "template" },
    tmpl.templates.map((t) => h("option", { value: t.id, selected: t.id === chosen }, t.global ? t.name : `${t.name} (yours)`)));
  const name = h("input", { name: "name", required: true, autofocus: true, pattern: "[a-z0-9][a-z0-9\\-]{0,39}", autocomplete: "off",
    spellcheck: "false", placeholder: "my-app" });
  const button = h("button", { type: "submit", class: "primary" }, "Create app");
  const form = h("form", { class: "stack narrow", "aria-label": "New app", onsubmit: async (e: Event) => {
    e.preventDefault();
    err.clear();
    const d = new FormData(form);
    const kind = String(d.get("kind"));
    try {
      const res = await busy(button, "Creating…", () => apps.createApp({
        name: name.value.trim(),
        description: String(d.get("description") ?? "").trim(),
        notes: String(d.get("notes") ?? "").trim(),
        framework: kind === "multi-fasthtml" ? Framework.FASTHTML : Framework.FASTAPI,
        mode: kind.startsWith("multi") ? AppMode.MULTI : AppMode.SINGLE,
        templateId: kind === "template" ? select.value : "",
        files: kind === "single" ? [{ name: "app.py", content: utf8(starter) }] : [],
      }));
      navigate(`/apps/${encodeURIComponent(res.app!.name)}`);
    } catch (e2) {
      err.show(message(e2));
      name.focus();
    }
  } },
    h("h1", null, "New app"),
    field("Name", name, "Lower-case letters, digits and dashes; it becomes the app's address."),
    field("Description (optional)", h("input", { name: "description", autocomplete: "off" })),
    field("Notes (optional)", h("textarea", { name: "notes", rows: 3 }), "For you: what the app is for, what is left to do. Change them later in Settings."),
    h("fieldset", { class: "kinds" }, h("legend", null, "Start from"),
      kinds.map(([v, label, hint]) => h("label", { class: "kind" },
        h("input", { type: "radio", name: "kind", value: v, checked: chosen ? v === "template" : v === "single",
          onchange: () => (select.disabled = v !== "template") }),
        h("span", null, h("strong", null, label), h("small", { class: "muted" }, hint))))),
    field("Template", select),
    err, h("div", { class: "row" }, button, h("a", { href: "/", class: "button" }, "Cancel")));
  select.disabled = !chosen;
  return h("section", null, form);
}
