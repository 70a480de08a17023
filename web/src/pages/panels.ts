// The editor's side panels: live logs and events, history with preview
// and rollback, settings (metadata, env vars and secrets, clone, save as
// template, delete), a side preview of the running app and the assistant.
import { ago, apps, date, isAbort, message, metrics, packageList, templates, text } from "../api";
import { busy, confirmByName, dialog, errorBox, field, h, replace, toast } from "../dom";
import { AppMode, CloneSource, EventKind, type App, type EnvVar } from "../gen/gofastapi/v1/apps_pb";
import { leaving, navigate, type PageContext } from "../nav";
import { databaseSetting } from "./database";
import { assistantPanel, type Load } from "./assistant";
import { ErrorClass, HealthStatus } from "../gen/gofastapi/v1/metrics_pb";

type Panel = { id: string; label: string; el: HTMLElement; open?: () => void };

export function sidePanels(ctx: PageContext, app: () => App, updated: (a: App) => void, load: Load, dirty: () => boolean) {
  const history = historyPanel(ctx, app, updated, load);
  const preview = previewPanel(app);
  const panels: Panel[] = [
    { id: "logs", label: "Logs", ...streamPanel(ctx, app, "logs") },
    { id: "events", label: "Events", ...streamPanel(ctx, app, "events") },
    { id: "metrics", label: "Metrics", ...metricsPanel(ctx, app) },
    { id: "history", label: "History", ...history },
    { id: "settings", label: "Settings", ...settingsPanel(ctx, app, updated) },
    { id: "preview", label: "Preview", ...preview },
    { id: "assistant", label: "Assistant", ...assistantPanel(ctx, app, load, dirty) },
  ];
  const tablist = h("div", { class: "side-tabs", role: "tablist", "aria-label": "Panels" });
  const body = h("div", { class: "side-body" });
  let current = "";
  const show = (id: string) => {
    current = id;
    replace(tablist, panels.map((p, i) => h("button", {
      type: "button", role: "tab", id: `tab-${p.id}`, "aria-selected": String(p.id === id), "aria-controls": `panel-${p.id}`,
      tabindex: p.id === id ? "0" : "-1", class: p.id === id ? "active" : "", onclick: () => show(p.id),
      onkeydown: (e: KeyboardEvent) => {
        if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
        const j = (i + (e.key === "ArrowRight" ? 1 : panels.length - 1)) % panels.length;
        show(panels[j].id);
        (tablist.querySelector(`#tab-${panels[j].id}`) as HTMLElement).focus();
      },
    }, p.label)));
    for (const p of panels) {
      p.el.id = `panel-${p.id}`;
      p.el.setAttribute("role", "tabpanel");
      p.el.setAttribute("aria-labelledby", `tab-${p.id}`);
      p.el.hidden = p.id !== id;
    }
    panels.find((p) => p.id === id)?.open?.();
  };
  replace(body, panels.map((p) => p.el));
  show("logs");
  const el = h("aside", { class: "side", "aria-label": "App panels" }, tablist, body);
  return {
    el,
    /** deployed refreshes what a deploy changes. */
    deployed: () => {
      history.refresh();
      if (current === "preview") preview.open();
    },
  };
}

/** streamPanel follows the app's logs or lifecycle events as they happen. */
function streamPanel(ctx: PageContext, app: () => App, kind: "logs" | "events"): { el: HTMLElement } {
  const list = h("ol", { class: `stream ${kind}`, "aria-label": kind === "logs" ? "Log lines" : "Events" });
  const live = kind === "logs" ? "Live: new lines appear as the app writes them." : "Live: deploys, cold starts, scale to zero, crashes, rollbacks.";
  const state = h("p", { class: "muted stream-state" }, live);
  const el = h("div", { class: "panel" }, state, list);
  const add = (time: Date | undefined, cls: string, tag: string, body: string) => {
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 30;
    list.appendChild(h("li", { class: cls },
      h("time", { datetime: time?.toISOString() }, time ? time.toLocaleTimeString() : ""), " ",
      h("span", { class: "tag" }, tag), " ", body));
    while (list.childElementCount > 1000) list.firstElementChild!.remove();
    if (atBottom) list.scrollTop = list.scrollHeight;
  };
  const run = async () => {
    // Reconnect after the stream drops (a restart of the platform, a
    // proxy's timeout), without repeating what was already shown.
    for (let attempt = 0; !ctx.signal.aborted; attempt++) {
      const seen = list.childElementCount;
      try {
        let first = true;
        const req = { idOrName: app().id, follow: true, limit: 200 };
        if (kind === "logs") {
          for await (const r of apps.watchLogs(req, { signal: ctx.signal })) {
            if (first) state.textContent = live;
            first = false;
            const l = r.line;
            if (!l) continue;
            add(date(l.time), `line ${l.stream}`, l.stream, l.text);
          }
        } else {
          for await (const r of apps.watchEvents(req, { signal: ctx.signal })) {
            if (first) state.textContent = live;
            first = false;
            const e = r.event;
            if (!e) continue;
            const cs = e.coldStart;
            const extra = cs && cs.totalMicros ? ` (${(Number(cs.totalMicros) / 1000).toFixed(1)} ms)` : "";
            add(date(e.time), `event ${EventKind[e.kind].toLowerCase()}`, EventKind[e.kind].toLowerCase().replace(/_/g, " "), e.message + extra);
          }
        }
        if (seen === 0 && list.childElementCount === 0) state.textContent = kind === "logs" ? "No log lines yet." : "No events yet.";
      } catch (err) {
        if (ctx.signal.aborted || isAbort(err)) return;
        state.textContent = `Disconnected: ${message(err)} Reconnecting…`;
      }
      // The replay on reconnect repeats recent lines: start from a clean list.
      list.replaceChildren();
      await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** attempt, 15000)));
    }
  };
  void run();
  return { el };
}

/** metricsPanel shows the app's health, its last 24 hours and its recent errors. */
function metricsPanel(ctx: PageContext, app: () => App) {
  const err = errorBox();
  const body = h("div", { class: "stack" });
  const refresh = async () => {
    err.clear();
    if (!app().deployedVersion) {
      replace(body, h("p", { class: "muted" }, "Deploy the app to see its requests, errors and health."));
      return;
    }
    try {
      const o = { signal: ctx.signal };
      const [health, stats, errors] = await Promise.all([
        metrics.getHealth({ idOrName: app().id }, o), metrics.getAppStats({ idOrName: app().id, minutes: 60 }, o),
        metrics.listErrors({ idOrName: app().id, limit: 20 }, o)]);
      const s = stats.last24h;
      const name = HealthStatus[health.status]?.toLowerCase() ?? "unknown";
      const dot = { green: "green", yellow: "yellow", red: "red" }[name] ?? "unknown";
      const fig = (label: string, v: string) => h("div", { class: "figure" }, h("strong", null, v), h("span", { class: "muted" }, label));
      const ms = (v: number | undefined) => (v ? `${v.toFixed(v < 10 ? 1 : 0)} ms` : "—");
      replace(body,
        h("p", { class: "health" }, h("span", { class: `dot ${dot}`, "aria-hidden": "true" }), " ", h("strong", null, `Health: ${name}`), ` · ${health.reason}`),
        h("div", { class: "figures-grid", "aria-label": "Last 24 hours" },
          fig("requests (24 h)", String(s?.requests ?? 0n)), fig("4xx", String(s?.status4xx ?? 0n)), fig("5xx", String(s?.status5xx ?? 0n)),
          fig("average", ms(s?.avgMs)), fig("p50", ms(s?.p50Ms)), fig("p95", ms(s?.p95Ms)), fig("p99", ms(s?.p99Ms)),
          fig("cold starts", String(stats.coldStarts24h))),
        h("h2", null, "Recent errors"),
        errors.errors.length === 0 ? h("p", { class: "muted" }, "No errors in the last 24 hours.") :
          h("ol", { class: "errors" }, errors.errors.map((e) => h("li", null,
            h("div", null, h("code", null, `${e.status} ${e.method} ${e.path}`), " ",
              h("span", { class: `pill ${e.class === ErrorClass.SERVER ? "error" : "warn"}` }, e.class === ErrorClass.SERVER ? "server" : "client"),
              " ", h("span", { class: "muted" }, ago(e.time))),
            e.traceback.length ? h("details", null, h("summary", null, "Traceback"), h("pre", null, e.traceback.join("\n"))) : null))));
    } catch (e) {
      if (!ctx.signal.aborted) err.show(`Could not load the metrics: ${message(e)}`);
    }
  };
  const el = h("div", { class: "panel" },
    h("div", { class: "row" }, h("span", { class: "muted" }, "Figures lag by up to a minute."), h("button", { type: "button", class: "small", onclick: () => void refresh() }, "Refresh")),
    err, body);
  return { el, open: () => void refresh() };
}

function historyPanel(ctx: PageContext, app: () => App, updated: (a: App) => void, load: (files: { name: string; content: string }[]) => void) {
  const err = errorBox();
  const list = h("ol", { class: "versions", "aria-label": "Versions" });
  const el = h("div", { class: "panel" }, h("p", { class: "muted" }, "Every deploy is kept. Rolling back points the app at an earlier version at once; nothing is rebuilt."), err, list);
  const refresh = async () => {
    try {
      const res = await apps.listVersions({ idOrName: app().id, limit: 20 }, { signal: ctx.signal });
      if (res.versions.length === 0) {
        replace(list, h("li", { class: "muted" }, "No deploys yet."));
        return;
      }
      replace(list, res.versions.map((v) => {
        const rollback = h("button", { type: "button", class: "small", disabled: v.current, onclick: async () => {
          err.clear();
          try {
            const r = await busy(rollback, "Rolling back…", () => apps.rollback({ idOrName: app().id, version: v.version }));
            toast(`Rolled back to ${r.version.slice(0, 12)}`);
            updated((await apps.getApp({ idOrName: app().id })).app!);
            void refresh();
          } catch (e) {
            err.show(`Could not roll back: ${message(e)}`);
          }
        } }, v.current ? "Serving" : "Roll back");
        return h("li", { class: `version${v.current ? " current" : ""}`, "data-version": v.version },
          h("div", null, h("code", null, v.version.slice(0, 12)), v.current ? h("span", { class: "pill live" }, "current") : null),
          h("div", { class: "muted" }, `${ago(v.createdAt)} · ${v.files.length} file${v.files.length === 1 ? "" : "s"}`),
          v.packages.length ? h("div", { class: "muted deps" }, `Dependencies: ${packageList(v.packages)}`) : null,
          h("div", { class: "row" },
            h("button", { type: "button", class: "small", onclick: () => void preview(v.version) }, "Preview"),
            rollback));
      }));
    } catch (e) {
      if (!ctx.signal.aborted) err.show(`Could not load the history: ${message(e)}`);
    }
  };
  const preview = async (version: string) => {
    err.clear();
    try {
      const res = await apps.getVersion({ idOrName: app().id, version });
      const files = res.files.map((f) => ({ name: f.name, content: text(f.content) }));
      const choice = await dialog(`Version ${version.slice(0, 12)}`,
        h("div", { class: "version-preview" },
          res.info?.packages.length ? h("p", { class: "muted" }, `Dependencies: ${packageList(res.info.packages)}`) : null,
          files.map((f) => h("details", { open: files.length === 1 || f.name === res.info?.entrypoint },
            h("summary", null, f.name), h("pre", null, h("code", null, f.content))))),
        [{ label: "Close" }, { label: "Open in editor", kind: "primary" }]);
      if (choice === "Open in editor") load(files);
    } catch (e) {
      err.show(`Could not load that version: ${message(e)}`);
    }
  };
  return { el, open: () => void refresh(), refresh: () => void refresh() };
}

function previewPanel(app: () => App) {
  const frame = h("iframe", { title: "App preview", class: "preview", sandbox: "allow-scripts allow-forms allow-same-origin allow-popups" });
  const note = h("p", { class: "muted" });
  const el = h("div", { class: "panel preview-panel" },
    h("div", { class: "row" }, note, h("button", { type: "button", class: "small", onclick: () => open() }, "Reload")), frame);
  const open = () => {
    const a = app();
    if (!a.deployedVersion) {
      note.textContent = "Deploy the app to preview it here.";
      frame.hidden = true;
      return;
    }
    frame.hidden = false;
    note.textContent = a.url;
    frame.src = a.url + "/?_preview=" + Date.now();
  };
  return { el, open };
}

function settingsPanel(ctx: PageContext, app: () => App, updated: (a: App) => void) {
  const el = h("div", { class: "panel settings" });
  const render = () => {
    const a = app();
    replace(el, metaForm(a, updated), envSection(ctx, app), domainsSection(app, updated), databaseSetting(ctx, app), cloneForm(app), templateForm(app), dangerZone(app));
  };
  return { el, open: render };
}

function metaForm(a: App, updated: (a: App) => void): HTMLElement {
  const err = errorBox();
  const name = h("input", { name: "name", value: a.name, required: true, spellcheck: "false", autocomplete: "off" });
  const desc = h("input", { name: "description", value: a.description, autocomplete: "off" });
  const notes = h("textarea", { name: "notes", rows: 3 }, a.notes);
  const mode = h("select", { name: "mode" },
    h("option", { value: "single", selected: a.mode !== AppMode.MULTI }, "Single file"),
    h("option", { value: "multi", selected: a.mode === AppMode.MULTI }, "Multi-file"));
  const save = h("button", { type: "submit" }, "Save settings");
  const f: HTMLFormElement = h("form", { class: "stack", "aria-label": "App settings", onsubmit: async (e: Event) => {
    e.preventDefault();
    err.clear();
    try {
      const res = await busy(save, "Saving…", () => apps.updateApp({
        idOrName: a.id, name: name.value.trim(), description: desc.value, notes: notes.value,
        mode: mode.value === "multi" ? AppMode.MULTI : AppMode.SINGLE,
      }));
      updated(res.app!);
      toast(res.app!.name !== a.name ? `Renamed: the app is now at ${res.app!.url}` : "Settings saved");
    } catch (e2) {
      err.show(message(e2));
    }
  } },
    h("h2", null, "App"),
    field("App name", name, "Renaming moves the app's URL at once."),
    field("Description", desc),
    field("Notes", notes),
    field("Files", mode),
    err, save);
  return f;
}

function envSection(ctx: PageContext, app: () => App): HTMLElement {
  const err = errorBox();
  const table = h("tbody");
  const render = (vars: EnvVar[]) => {
    if (vars.length === 0) {
      replace(table, h("tr", null, h("td", { colspan: "3", class: "muted" }, "No variables yet.")));
      return;
    }
    replace(table, vars.map((v) => h("tr", { "data-env": v.name },
      h("td", null, h("code", null, v.name)),
      h("td", null, v.secret ? h("span", { class: "muted" }, v.set ? "secret (set)" : "secret (not set: give it a value)") : h("code", null, v.value)),
      h("td", null, h("button", { type: "button", class: "small", "aria-label": `Remove ${v.name}`, onclick: async () => {
        err.clear();
        try {
          render((await apps.unsetEnv({ idOrName: app().id, names: [v.name] })).vars);
          toast(`${v.name} removed; the app restarts on its next request`);
        } catch (e) {
          err.show(message(e));
        }
      } }, "Remove")))));
  };
  const name = h("input", { name: "env-name", placeholder: "API_KEY", required: true, spellcheck: "false", autocomplete: "off", "aria-label": "Variable name" });
  const value = h("input", { name: "env-value", placeholder: "value", autocomplete: "off", "aria-label": "Value" });
  const secret = h("input", { type: "checkbox", name: "env-secret" });
  const add = h("button", { type: "submit" }, "Set");
  const form: HTMLFormElement = h("form", { class: "env-form", "aria-label": "Set a variable", onsubmit: async (e: Event) => {
    e.preventDefault();
    err.clear();
    try {
      const res = await busy(add, "Setting…", () => apps.setEnv({ idOrName: app().id, vars: [{ name: name.value.trim(), value: value.value, secret: secret.checked }] }));
      render(res.vars);
      toast(`${name.value.trim()} set; the app restarts on its next request`);
      form.reset();
      name.focus();
    } catch (e2) {
      err.show(message(e2));
    }
  } }, name, value, h("label", { class: "check" }, secret, "Secret"), add);
  void apps.listEnv({ idOrName: app().id }, { signal: ctx.signal }).then((r) => render(r.vars), (e) => !ctx.signal.aborted && err.show(message(e)));
  return h("section", { class: "stack", "aria-label": "Environment variables" },
    h("h2", null, "Environment variables"),
    h("p", { class: "muted" }, "The app reads them with os.environ. Secrets are stored encrypted and never shown again."),
    h("table", { class: "env" }, h("thead", null, h("tr", null, h("th", null, "Name"), h("th", null, "Value"), h("th", null, ""))), table),
    form, err);
}

// domainsSection lists the app's custom domains, removes them, and adds
// one once its CNAME record points at the app's own host.
function domainsSection(app: () => App, updated: (a: App) => void): HTMLElement {
  const err = errorBox();
  const list = h("ul", { class: "domains", "aria-label": "Custom domains" });
  const target = () => `${app().name}.${location.hostname}`;
  const render = (a: App) => {
    const domains = a.domains;
    replace(list, domains.length === 0 ? h("li", { class: "muted" }, "None yet.") : domains.map((d) => h("li", { "data-domain": d },
      h("a", { href: `${location.protocol}//${d}${location.port ? `:${location.port}` : ""}/`, target: "_blank", rel: "noopener" }, d), " ",
      h("button", { type: "button", class: "small", "aria-label": `Remove ${d}`, onclick: async () => {
        err.clear();
        try {
          const res = await apps.removeDomain({ idOrName: app().id, domain: d });
          updated(res.app!);
          render(res.app!);
          toast(`${d} no longer serves the app`);
        } catch (e) {
          err.show(message(e));
        }
      } }, "Remove"),
      a.domainsFailing.includes(d) ? h("p", { class: "error-text", role: "status" },
        "Its CNAME record was gone or pointed elsewhere at the last check: point it at ", h("code", null, target()),
        " again, or it is removed after 3 such checks in a row.") : null)));
  };
  const domain = h("input", { name: "domain", placeholder: "www.example.com", required: true, spellcheck: "false", autocomplete: "off", "aria-label": "Custom domain" });
  const add = h("button", { type: "submit" }, "Add domain");
  const form: HTMLFormElement = h("form", { class: "row", "aria-label": "Add a custom domain", onsubmit: async (e: Event) => {
    e.preventDefault();
    err.clear();
    try {
      const res = await busy(add, "Checking DNS…", () => apps.addDomain({ idOrName: app().id, domain: domain.value.trim() }));
      updated(res.app!);
      render(res.app!);
      toast(`The app is now served at ${domain.value.trim()} as well`);
      form.reset();
    } catch (e2) {
      err.show(message(e2));
    }
  } }, domain, add);
  render(app());
  return h("section", { class: "stack", "aria-label": "Custom domains" },
    h("h2", null, "Custom domains"),
    h("p", { class: "muted" }, "Serve the app at a domain of yours as well: give the domain a CNAME record pointing at ", h("code", null, target()),
      ", then add it here. Put TLS in front of the platform for https."),
    list, form, err);
}

function cloneForm(app: () => App): HTMLElement {
  const err = errorBox();
  const name = h("input", { name: "clone-name", required: true, spellcheck: "false", autocomplete: "off", value: `${app().name}-copy`, "aria-label": "Name of the copy" });
  const source = h("select", { name: "clone-source", "aria-label": "Copy from" },
    h("option", { value: "deployed" }, "the deployed version"), h("option", { value: "draft" }, "the draft"));
  const deploy = h("input", { type: "checkbox", name: "clone-deploy", checked: true });
  const button = h("button", { type: "submit" }, "Clone");
  const f: HTMLFormElement = h("form", { class: "stack", "aria-label": "Clone", onsubmit: async (e: Event) => {
    e.preventDefault();
    err.clear();
    try {
      const res = await busy(button, "Cloning…", () => apps.cloneApp({
        idOrName: app().id, newName: name.value.trim(), deploy: deploy.checked,
        source: source.value === "draft" ? CloneSource.DRAFT : CloneSource.DEPLOYED,
      }));
      toast(`Cloned as ${res.app!.name}`);
      navigate(`/apps/${encodeURIComponent(res.app!.name)}`);
    } catch (e2) {
      err.show(message(e2));
    }
  } }, h("h2", null, "Clone"),
    h("p", { class: "muted" }, "A new app with these files and variables (secret values are not copied)."),
    h("div", { class: "row" }, name, h("span", null, "from"), source), h("label", { class: "check" }, deploy, "Deploy it at once"), err, button);
  return f;
}

function templateForm(app: () => App): HTMLElement {
  const err = errorBox();
  const name = h("input", { name: "template-name", required: true, autocomplete: "off", value: app().name, "aria-label": "Template name" });
  const desc = h("input", { name: "template-description", autocomplete: "off", placeholder: "What it is for", "aria-label": "Template description" });
  const button = h("button", { type: "submit" }, "Save as template");
  const f: HTMLFormElement = h("form", { class: "stack", "aria-label": "Save as template", onsubmit: async (e: Event) => {
    e.preventDefault();
    err.clear();
    try {
      const res = await busy(button, "Saving…", () => templates.createTemplate({ name: name.value.trim(), description: desc.value.trim(), fromApp: app().id }));
      toast(`Template “${res.template!.name}” saved`);
    } catch (e2) {
      err.show(message(e2));
    }
  } }, h("h2", null, "Save as template"),
    h("p", { class: "muted" }, "Start new apps from this one: the draft (or the deployed version) becomes a template only you see."),
    name, desc, err, button);
  return f;
}

function dangerZone(app: () => App): HTMLElement {
  const err = errorBox();
  const button = h("button", { type: "button", class: "danger", onclick: async () => {
    const a = app();
    if (!(await confirmByName(`Delete ${a.name}?`, "The app, its versions, logs and URL are removed. This cannot be undone.", a.name, "Delete app"))) return;
    try {
      await busy(button, "Deleting…", () => apps.deleteApp({ idOrName: a.id }));
      toast(`${a.name} deleted`);
      leaving();
      navigate("/");
    } catch (e) {
      err.show(message(e));
    }
  } }, "Delete app");
  return h("section", { class: "stack danger-zone", "aria-label": "Delete" }, h("h2", null, "Delete"), err, button);
}
