// The Database page (databases, stats, a data browser, viewer
// credentials) and the per-app database choice in the editor's settings.
import { bytes, databases, message } from "../api";
import { busy, confirmByName, dialog, errorBox, field, h, replace, toast } from "../dom";
import type { App } from "../gen/gofastapi/v1/apps_pb";
import type { Database } from "../gen/gofastapi/v1/database_pb";
import type { PageContext } from "../nav";

export async function databasePage(ctx: PageContext): Promise<Node> {
  const o = { signal: ctx.signal };
  const err = errorBox();
  const list = h("ul", { class: "cards", "aria-label": "Databases" });
  const quota = h("p", { class: "muted" });
  const detail = h("section", { class: "db-detail", "aria-label": "Collections" });
  let selected = ctx.query.get("db") ?? "";

  const load = async () => {
    const res = await databases.listDatabases({}, o);
    const used = Number(res.usedBytes), q = Number(res.quotaBytes);
    const n = res.databases.length;
    const counted = res.maxDatabases ? `${n} of ${res.maxDatabases} databases` : `${n} database${n === 1 ? "" : "s"}`;
    replace(quota, `${bytes(used)} used${q ? ` of ${bytes(q)}` : ""} · ${counted} · database user `,
      h("code", null, res.username));
    if (!res.databases.some((d) => d.name === selected)) selected = res.databases.find((d) => d.default)?.name ?? res.databases[0]?.name ?? "";
    replace(list, res.databases.map((d) => dbCard(d, d.name === selected)));
    if (selected) await showStats(selected);
  };

  const dbCard = (d: Database, active: boolean) => {
    const act = async (label: string, f: () => Promise<unknown>, done: string) => {
      err.clear();
      try {
        await f();
        toast(done);
        await load();
      } catch (e) {
        err.show(`Could not ${label}: ${message(e)}`);
      }
    };
    return h("li", { class: `card${active ? " selected" : ""}`, "data-database": d.name },
      h("div", { class: "card-head" },
        h("button", { type: "button", class: "link app-name", "aria-pressed": String(active), onclick: () => {
          selected = d.name;
          history.replaceState(null, "", `/database?db=${encodeURIComponent(d.name)}`);
          void load();
        } }, d.name),
        d.default ? h("span", { class: "pill live" }, "default") : null),
      h("p", { class: "muted desc" }, `${bytes(d.sizeBytes)} · in MongoDB: `, h("code", null, d.storeName)),
      h("p", { class: "muted desc" }, d.apps.length ? `Used by ${d.apps.join(", ")}` : "No app uses it."),
      h("div", { class: "row" },
        d.default ? null : h("button", { type: "button", class: "small", onclick: () => void act("make it the default", () => databases.setDefaultDatabase({ database: d.id }), `${d.name} is the default database`) }, "Make default"),
        h("button", { type: "button", class: "small", onclick: async () => {
          const input = h("input", { value: d.name, "aria-label": "New name", spellcheck: "false" });
          const ok = dialog(`Rename ${d.name}`, field("New name", input, "Apps keep working: the name they see inside MongoDB does not change."),
            [{ label: "Cancel" }, { label: "Rename", kind: "primary", enabled: () => input.value.trim() !== "" && input.value.trim() !== d.name }]);
          input.focus();
          if ((await ok) !== "Rename") return;
          if (selected === d.name) selected = input.value.trim();
          await act("rename it", () => databases.renameDatabase({ database: d.id, newName: input.value.trim() }), "Database renamed");
        } }, "Rename"),
        h("button", { type: "button", class: "small danger", onclick: async () => {
          if (!(await confirmByName(`Delete ${d.name}?`, "The database and all its data are removed. This cannot be undone.", d.name, "Delete database"))) return;
          await act("delete it", () => databases.deleteDatabase({ database: d.id }), `${d.name} deleted`);
        } }, "Delete")));
  };

  const showStats = async (name: string) => {
    const st = await databases.getDatabaseStats({ database: name }, o);
    const browser = h("div", { class: "browser" });
    replace(detail, h("h2", null, `Collections of ${name}`),
      h("p", { class: "muted" }, `${bytes(st.totalBytes)} in all`),
      st.collections.length === 0 ? h("p", { class: "muted" }, "No collections yet: an app creates one when it first writes to it.") :
        h("div", { class: "table-wrap" }, h("table", { class: "collections" },
          h("thead", null, h("tr", null, h("th", null, "Collection"), h("th", null, "Documents"), h("th", null, "Size"), h("th", null, "Average document"))),
          h("tbody", null, st.collections.map((c) => h("tr", { "data-collection": c.name },
            h("td", null, h("button", { type: "button", class: "link", onclick: () => void browse(browser, name, c.name) }, c.name)),
            h("td", null, String(c.documents)), h("td", null, bytes(c.sizeBytes)), h("td", null, bytes(c.avgDocumentBytes))))))),
      browser);
  };

  const browse = async (el: HTMLElement, db: string, coll: string, skip = 0) => {
    const berr = errorBox();
    const filter = h("input", { "aria-label": "Filter", placeholder: '{"text": {"$regex": "hello"}}', spellcheck: "false", value: el.dataset.filter ?? "" });
    const docs = h("ol", { class: "documents", "aria-label": `Documents of ${coll}` });
    const pager = h("div", { class: "row" });
    const run = async (from: number) => {
      berr.clear();
      el.dataset.filter = filter.value;
      try {
        const res = await databases.findDocuments({ database: db, collection: coll, filter: filter.value.trim(), skip: BigInt(from), limit: 20n }, o);
        replace(docs, res.documents.length === 0 ? h("li", { class: "muted" }, "No documents match.") : res.documents.map((d) => h("li", null, h("pre", null, pretty(d)))));
        const total = Number(res.total);
        replace(pager, h("span", { class: "muted" }, total ? `${from + 1}-${Math.min(from + 20, total)} of ${total}` : ""),
          from > 0 ? h("button", { type: "button", class: "small", onclick: () => void run(Math.max(0, from - 20)) }, "Previous") : null,
          from + 20 < total ? h("button", { type: "button", class: "small", onclick: () => void run(from + 20) }, "Next") : null);
      } catch (e) {
        berr.show(message(e));
      }
    };
    replace(el, h("h2", null, `Documents in ${coll}`),
      h("form", { class: "row", "aria-label": "Filter documents", onsubmit: (e: Event) => (e.preventDefault(), void run(0)) },
        filter, h("button", { type: "submit", class: "small" }, "Find")),
      berr, docs, pager);
    await run(skip);
  };

  const name = h("input", { name: "db-name", required: true, spellcheck: "false", autocomplete: "off", placeholder: "analytics", "aria-label": "New database name" });
  const create = h("button", { type: "submit" }, "Create database");
  const createForm: HTMLFormElement = h("form", { class: "row", "aria-label": "Create a database", onsubmit: async (e: Event) => {
    e.preventDefault();
    err.clear();
    try {
      const r = await busy(create, "Creating…", () => databases.createDatabase({ name: name.value.trim() }));
      toast(`${r.database!.name} created`);
      createForm.reset();
      await load();
    } catch (e2) {
      err.show(message(e2));
    }
  } }, name, create);

  const viewer = h("div", { class: "stack" });
  const rotateViewer = h("button", { type: "button", onclick: async () => {
    err.clear();
    try {
      const r = await busy(rotateViewer, "Rotating…", () => databases.rotateViewerCredentials({}));
      replace(viewer, h("p", null, "New viewer credentials (the password is shown only now):"),
        h("dl", { class: "creds" }, h("dt", null, "Address"), h("dd", null, h("a", { href: r.url, target: "_blank", rel: "noopener" }, r.url)),
          h("dt", null, "Username"), h("dd", null, h("code", null, r.username)), h("dt", null, "Password"), h("dd", null, h("code", { class: "secret" }, r.password))));
    } catch (e) {
      err.show(message(e));
    }
  } }, "Rotate viewer credentials");
  const rotateApps = h("button", { type: "button", onclick: async () => {
    if ((await dialog("Rotate the apps' database password?", h("p", null, "Connections with the old password close at once; your apps restart on their next request with the new one."),
      [{ label: "Cancel" }, { label: "Rotate", kind: "danger" }])) !== "Rotate") return;
    try {
      const r = await busy(rotateApps, "Rotating…", () => databases.rotateCredentials({}));
      toast(`Password rotated; ${r.restartedApps} app${r.restartedApps === 1 ? "" : "s"} restart on their next request`);
    } catch (e) {
      err.show(message(e));
    }
  } }, "Rotate app password");

  await load();
  return h("section", { class: "database" }, h("div", { class: "page-head" }, h("h1", null, "Database")), quota, err, list, createForm, detail,
    h("h2", null, "Data viewer and credentials"),
    h("p", { class: "muted" }, "A read-only data viewer runs at its own address, behind credentials you can rotate at any time. Apps get their connection string as PLATFORM_MONGO_URI."),
    h("div", { class: "row" }, rotateViewer, rotateApps), viewer);
}

function pretty(doc: string): string {
  try {
    return JSON.stringify(JSON.parse(doc), null, 2);
  } catch {
    return doc;
  }
}

/** databaseSetting is the app's database choice in its settings. */
export function databaseSetting(ctx: PageContext, app: () => App): Node {
  const err = errorBox();
  const select = h("select", { name: "database", disabled: true });
  void databases.listDatabases({}, { signal: ctx.signal }).then((res) => {
    const a = app();
    const chosen = res.databases.find((d) => !d.default && d.apps.includes(a.name));
    const def = res.databases.find((d) => d.default);
    replace(select, h("option", { value: "" }, `The default database${def ? ` (${def.name})` : ""}`),
      res.databases.filter((d) => !d.default).map((d) => h("option", { value: d.id, selected: d === chosen }, d.name)));
    select.disabled = false;
  }, (e) => !ctx.signal.aborted && err.show(message(e)));
  select.addEventListener("change", async () => {
    err.clear();
    try {
      await databases.setAppDatabase({ app: app().id, database: select.value });
      toast("Database chosen; the app restarts on its next request");
    } catch (e) {
      err.show(message(e));
    }
  });
  return h("section", { class: "stack", "aria-label": "Database" }, h("h2", null, "Database"),
    field("The app's PLATFORM_MONGO_URI opens", select), err, h("a", { href: "/database" }, "Manage databases"));
}
