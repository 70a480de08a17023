// The templates browser: All / My / Global, preview, use, edit and delete
// one's own.
import { ago, message, templates, text } from "../api";
import { dialog, errorBox, h, replace, toast } from "../dom";
import { AppMode, Framework } from "../gen/gofastapi/v1/apps_pb";
import { TemplateScope, type Template } from "../gen/gofastapi/v1/templates_pb";
import type { PageContext } from "../nav";

const scopes: [TemplateScope, string][] = [[TemplateScope.ALL, "All"], [TemplateScope.MINE, "My templates"], [TemplateScope.GLOBAL, "Global"]];

export function templatesPage(ctx: PageContext): Node {
  const err = errorBox();
  const grid = h("ul", { class: "cards", "aria-label": "Templates" });
  const tabs = h("div", { class: "seg", role: "tablist", "aria-label": "Which templates" });
  const show = async (scope: TemplateScope) => {
    replace(tabs, scopes.map(([s, label]) => h("button", {
      type: "button", role: "tab", "aria-selected": String(s === scope), class: s === scope ? "active" : "", onclick: () => void show(s),
    }, label)));
    err.clear();
    try {
      const res = await templates.listTemplates({ scope }, { signal: ctx.signal });
      if (res.templates.length === 0) {
        replace(grid, h("li", { class: "empty" }, scope === TemplateScope.MINE
          ? "You have no templates yet. Open an app, then Settings → Save as template." : "No templates."));
        return;
      }
      replace(grid, res.templates.map((t) => card(t, () => void show(scope), err)));
    } catch (e) {
      if (!ctx.signal.aborted) err.show(message(e));
    }
  };
  void show(TemplateScope.ALL);
  return h("section", null, h("div", { class: "page-head" }, h("h1", null, "Templates")), tabs, err, grid);
}

function card(t: Template, refresh: () => void, err: ReturnType<typeof errorBox>): HTMLElement {
  const kind = `${t.framework === Framework.FASTHTML ? "FastHTML" : "FastAPI"} · ${t.mode === AppMode.MULTI ? "multi-file" : "single file"}`;
  return h("li", { class: "card", "data-template": t.id },
    h("div", { class: "card-head" }, h("strong", null, t.name), t.global ? h("span", { class: "pill info" }, "global") : h("span", { class: "pill" }, "yours")),
    h("p", { class: "muted desc" }, t.description || "No description."),
    h("p", { class: "muted" }, kind, t.tags.length ? ` · ${t.tags.join(", ")}` : "", !t.global && t.updatedAt ? ` · updated ${ago(t.updatedAt)}` : ""),
    h("div", { class: "row" },
      h("a", { class: "button primary small", href: `/new?template=${encodeURIComponent(t.id)}` }, "Use"),
      h("button", { type: "button", class: "small", onclick: () => void preview(t.id, err) }, "Preview"),
      t.global ? null : h("button", { type: "button", class: "small", onclick: () => void edit(t, refresh, err) }, "Edit"),
      t.global ? null : h("button", { type: "button", class: "small danger", onclick: async () => {
        if ((await dialog(`Delete template ${t.name}?`, h("p", null, "Apps made from it are not affected."), [{ label: "Cancel" }, { label: "Delete", kind: "danger" }])) !== "Delete") return;
        try {
          await templates.deleteTemplate({ id: t.id });
          toast("Template deleted");
          refresh();
        } catch (e) {
          err.show(message(e));
        }
      } }, "Delete")));
}

async function preview(id: string, err: ReturnType<typeof errorBox>): Promise<void> {
  try {
    const t = (await templates.getTemplate({ id })).template!;
    await dialog(t.name, h("div", { class: "version-preview" }, t.files.map((f) => h("details", { open: f.name === t.entrypoint },
      h("summary", null, f.name), h("pre", null, h("code", null, text(f.content)))))), [{ label: "Close" }]);
  } catch (e) {
    err.show(message(e));
  }
}

async function edit(t: Template, refresh: () => void, err: ReturnType<typeof errorBox>): Promise<void> {
  const name = h("input", { value: t.name, "aria-label": "Name" });
  const desc = h("input", { value: t.description, "aria-label": "Description" });
  const choice = await dialog(`Edit ${t.name}`, h("div", { class: "stack" },
    h("label", { class: "field" }, h("span", null, "Name"), name), h("label", { class: "field" }, h("span", null, "Description"), desc)),
  [{ label: "Cancel" }, { label: "Save", kind: "primary", enabled: () => name.value.trim() !== "" }]);
  if (choice !== "Save") return;
  try {
    await templates.updateTemplate({ id: t.id, name: name.value.trim(), description: desc.value.trim() });
    toast("Template saved");
    refresh();
  } catch (e) {
    err.show(message(e));
  }
}
