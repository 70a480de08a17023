// The editor: an app's files with validation problems at their lines,
// drafts (Ctrl/Cmd+S), deploys (Ctrl/Cmd+Enter) stage by stage, and the
// side panels (logs, events, history, settings, preview, assistant).
import { apps, message, packageList, problemsOf, text, utf8 } from "../api";
import { dialog, errorBox, h, replace, toast } from "../dom";
import { AppMode, AppStatus, DeployStage, type App, type SaveDraftResponse, type ValidationError } from "../gen/gofastapi/v1/apps_pb";
import { setBeforeLeave, type PageContext } from "../nav";
import { EditorView, goTo, newState, showProblems, withProblems, type EditorState } from "../code";
import { sidePanels } from "./panels";

interface OpenFile {
  name: string;
  state: EditorState;
  /** saved is the content of the draft as last saved (or loaded). */
  saved: string;
}

const stages: [DeployStage, string][] = [
  [DeployStage.VALIDATE, "Validate"],
  [DeployStage.STORE, "Store version"],
  [DeployStage.PUBLISH, "Publish bundle"],
  [DeployStage.ROUTE, "Route"],
  [DeployStage.WARM, "Warm"],
  [DeployStage.LIVE, "Live"],
];

/** isMac decides how shortcuts are written. */
const mod = /Mac|iPhone|iPad/.test(navigator.platform) ? "⌘" : "Ctrl";

export async function editorPage(ctx: PageContext): Promise<Node> {
  const res = await apps.getApp({ idOrName: ctx.params[0] }, { signal: ctx.signal });
  return new Editor(ctx, res.app!, (res.draft ?? res.deployed)?.files.map((f) => ({ name: f.name, content: text(f.content) })) ?? []).el;
}

class Editor {
  el: HTMLElement;
  private app: App;
  private files: OpenFile[] = [];
  private savedNames: string[] = [];
  private active = 0;
  private problems: ValidationError[] = [];
  private view: EditorView;
  private tabs = h("div", { class: "file-tabs", role: "tablist", "aria-label": "Files" });
  private pill = h("span", { class: "pill", role: "status", "aria-live": "polite", "data-testid": "status" });
  private problemList = h("div", { class: "problems", "aria-label": "Problems" });
  private progress = h("div", { class: "deploy-progress", "aria-label": "Deploy progress", "aria-live": "polite" });
  private err = errorBox();
  private saveBtn = h("button", { type: "button", title: `Save draft (${mod}+S)` }, "Save");
  private deployBtn = h("button", { type: "button", class: "primary", title: `Deploy (${mod}+Enter)` }, "Deploy");
  private openLink = h("a", { class: "button", target: "_blank", rel: "noopener" }, "Open app ↗");
  private docsLink = h("a", { class: "button", target: "_blank", rel: "noopener", title: "The app's OpenAPI docs" }, "/docs");
  private title = h("h1", { class: "app-title" });
  private working = false;
  private panels: ReturnType<typeof sidePanels>;

  constructor(ctx: PageContext, app: App, files: { name: string; content: string }[]) {
    this.app = app;
    if (files.length === 0) files = [{ name: app.entrypoint || "app.py", content: "" }];
    const keys = { save: () => void this.save(), deploy: () => void this.deploy() };
    for (const f of files) this.files.push({ name: f.name, saved: f.content, state: newState(f.name, f.content, keys, () => this.changed()) });
    this.savedNames = files.map((f) => f.name);
    const entry = this.files.findIndex((f) => f.name === app.entrypoint);
    this.active = entry >= 0 ? entry : 0;
    this.view = new EditorView({ state: this.files[this.active].state });
    this.saveBtn.onclick = () => void this.save();
    this.deployBtn.onclick = () => void this.deploy();
    this.panels = sidePanels(ctx, () => this.app, (a) => this.updated(a), (files, saved) => this.load(files, saved), () => this.dirty());

    this.el = h("section", { class: "editor-page", "data-dirty": "false" },
      h("div", { class: "editor-head" },
        this.title, this.pill,
        h("div", { class: "actions" }, this.saveBtn, this.deployBtn, this.openLink, this.docsLink)),
      this.err,
      h("div", { class: "editor-body" },
        h("div", { class: "editor-main" },
          h("div", { class: "file-bar" }, this.tabs,
            h("button", { type: "button", class: "small", onclick: () => void this.addFile(), title: "Add a file" }, "+ File")),
          h("div", { class: "code" }, this.view.dom),
          this.problemList, this.progress,
          h("p", { class: "muted hint" }, `${mod}+S saves a draft · ${mod}+Enter deploys`)),
        this.panels.el));

    const onKey = (e: KeyboardEvent) => {
      if (e.defaultPrevented || !(e.ctrlKey || e.metaKey) || document.querySelector("dialog[open]")) return;
      if (e.key === "s" || e.key === "S") {
        e.preventDefault();
        void this.save();
      } else if (e.key === "Enter") {
        e.preventDefault();
        void this.deploy();
      }
    };
    document.addEventListener("keydown", onKey);
    ctx.signal.addEventListener("abort", () => {
      document.removeEventListener("keydown", onKey);
      this.view.destroy();
    });
    setBeforeLeave(() => !this.dirty() || confirm("Leave without saving? Your unsaved changes will be lost."));
    this.render();
    this.updated(app);
  }

  private keys() {
    return { save: () => void this.save(), deploy: () => void this.deploy() };
  }

  private current(): OpenFile {
    this.files[this.active].state = this.view.state;
    return this.files[this.active];
  }

  private contents(): { name: string; content: string }[] {
    this.current();
    return this.files.map((f) => ({ name: f.name, content: f.state.doc.toString() }));
  }

  private dirty(): boolean {
    const names = this.files.map((f) => f.name);
    if (names.join("\n") !== this.savedNames.join("\n")) return true;
    this.current();
    return this.files.some((f) => f.state.doc.toString() !== f.saved);
  }

  private changed(): void {
    this.renderStatus();
  }

  /** updated takes a new App from the server (after save, deploy, rename…). */
  private updated(a: App): void {
    const renamed = a.name !== this.app.name;
    this.app = a;
    this.title.textContent = a.name;
    this.openLink.href = a.url;
    this.openLink.hidden = !a.deployedVersion;
    this.docsLink.href = a.url + "/docs";
    this.docsLink.hidden = !a.deployedVersion;
    if (renamed) {
      history.replaceState(null, "", `/apps/${encodeURIComponent(a.name)}`);
      document.title = `${a.name} · gofastapi`;
    }
    this.renderStatus();
    this.renderTabs();
  }

  /**
   * load replaces the editor's files (a version restored from history, a
   * change accepted from the assistant); saved, when given, is the draft
   * the files were saved as, so they count as saved.
   */
  private load(files: { name: string; content: string }[], saved?: SaveDraftResponse): void {
    const keys = this.keys();
    this.files = files.map((f) => ({
      name: f.name,
      saved: this.files.find((o) => o.name === f.name)?.saved ?? "",
      state: newState(f.name, f.content, keys, () => this.changed()),
    }));
    this.active = Math.max(0, this.files.findIndex((f) => f.name === this.app.entrypoint));
    this.view.setState(this.files[this.active].state);
    if (saved) this.markSaved(files);
    this.setProblems(saved?.problems ?? []);
    if (saved?.app) this.updated(saved.app);
    this.render();
  }

  private renderStatus(): void {
    const dirty = this.dirty();
    this.el.dataset.dirty = String(dirty);
    let label: string, kind: string;
    if (dirty) [label, kind] = ["Unsaved changes", "warn"];
    else if (this.app.status === AppStatus.CHANGES_NOT_DEPLOYED) [label, kind] = ["Changes not deployed", "info"];
    else if (this.app.status === AppStatus.UP_TO_DATE) [label, kind] = ["Up to date", "live"];
    else [label, kind] = ["Not deployed", "idle"];
    this.pill.className = `pill ${kind}`;
    this.pill.textContent = label;
  }

  private render(): void {
    this.renderTabs();
    this.renderProblems();
    this.renderStatus();
  }

  private problemsOf(name: string): ValidationError[] {
    return this.problems.filter((p) => p.file === name);
  }

  private renderTabs(): void {
    const multi = this.app.mode === AppMode.MULTI || this.files.length > 1;
    replace(this.tabs, this.files.map((f, i) => {
      const n = this.problemsOf(f.name).length;
      const selected = i === this.active;
      const tab = h("button", {
        type: "button", role: "tab", class: `file-tab${selected ? " active" : ""}`, "aria-selected": String(selected),
        tabindex: selected ? "0" : "-1", "data-file": f.name,
        onclick: () => this.select(i),
        onkeydown: (e: KeyboardEvent) => {
          if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
            e.preventDefault();
            const j = (i + (e.key === "ArrowRight" ? 1 : this.files.length - 1)) % this.files.length;
            this.select(j);
            (this.tabs.querySelectorAll("[role=tab]")[j] as HTMLElement)?.focus();
          }
        },
      }, f.name, n ? h("span", { class: "badge err", "aria-label": `${n} problem${n === 1 ? "" : "s"}` }, String(n)) : null);
      return h("span", { class: "tab-wrap", role: "presentation" }, tab,
        selected && multi ? h("span", { class: "tab-tools" },
          h("button", { type: "button", class: "icon", title: `Rename ${f.name}`, "aria-label": `Rename ${f.name}`, onclick: () => void this.rename(i) }, "✎"),
          this.files.length > 1 ? h("button", { type: "button", class: "icon", title: `Remove ${f.name}`, "aria-label": `Remove ${f.name}`, onclick: () => void this.remove(i) }, "×") : null)
          : null);
    }));
  }

  private select(i: number): void {
    this.current();
    this.active = i;
    this.view.setState(this.files[i].state);
    this.renderTabs();
  }

  private async askName(title: string, value: string, action: string): Promise<string> {
    const input = h("input", { type: "text", value, "aria-label": "File name", spellcheck: "false", autocomplete: "off" });
    const hint = h("small", { class: "muted" }, "A relative path ending in .py .html .css .js .json .txt or .svg, such as routes.py or static/app.css");
    const deps = h("small", { class: "muted" }, h("code", null, "requirements.txt"), " declares extra pure-Python packages, one a line, from those the platform's admin allows.");
    const res = dialog(title, h("label", { class: "field" }, h("span", null, "File name"), input, hint, deps), [
      { label: "Cancel" }, { label: action, kind: "primary", enabled: () => input.value.trim() !== "" },
    ]);
    input.addEventListener("keydown", (e) => {
      if (e.key !== "Enter") return;
      // Handled here: the key must not go on to the editor focused next.
      e.preventDefault();
      if (input.value.trim()) (res.el.querySelector(`[data-label="${action}"]`) as HTMLButtonElement).click();
    });
    input.focus();
    input.select();
    return (await res) === action ? input.value.trim() : "";
  }

  private async addFile(): Promise<void> {
    const name = await this.askName("Add a file", "", "Add");
    if (!name) return;
    if (this.files.some((f) => f.name === name)) {
      this.err.show(`There is already a file named ${name}.`);
      return;
    }
    this.err.clear();
    this.current();
    this.files.push({ name, saved: "", state: newState(name, "", this.keys(), () => this.changed()) });
    this.select(this.files.length - 1);
    this.renderStatus();
    this.view.focus();
  }

  private async rename(i: number): Promise<void> {
    const old = this.files[i].name;
    const name = await this.askName(`Rename ${old}`, old, "Rename");
    if (!name || name === old) return;
    if (this.files.some((f) => f.name === name)) {
      this.err.show(`There is already a file named ${name}.`);
      return;
    }
    this.current();
    const f = this.files[i];
    f.name = name;
    f.state = newState(name, f.state.doc.toString(), this.keys(), () => this.changed());
    if (i === this.active) this.view.setState(f.state);
    for (const p of this.problems) if (p.file === old) p.file = name;
    this.setProblems(this.problems);
  }

  private async remove(i: number): Promise<void> {
    const name = this.files[i].name;
    const ok = await dialog(`Remove ${name}?`, h("p", null, `${name} leaves the editor; the app loses it at the next save or deploy.`),
      [{ label: "Cancel" }, { label: "Remove", kind: "danger" }]);
    if (ok !== "Remove") return;
    this.current();
    this.files.splice(i, 1);
    this.active = Math.min(this.active, this.files.length - 1);
    this.view.setState(this.files[this.active].state);
    this.render();
  }

  private setProblems(problems: ValidationError[]): void {
    this.problems = problems;
    this.current();
    this.files.forEach((f, i) => {
      if (i === this.active) showProblems(this.view, this.problemsOf(f.name));
      else f.state = withProblems(f.state, this.problemsOf(f.name));
    });
    this.render();
  }

  private renderProblems(): void {
    if (this.problems.length === 0) {
      replace(this.problemList);
      return;
    }
    const n = this.problems.length;
    replace(this.problemList, h("h2", null, `${n} problem${n === 1 ? "" : "s"}`),
      h("ul", null, this.problems.map((p) => h("li", null, h("button", { type: "button", class: "link problem", onclick: () => {
        const i = this.files.findIndex((f) => f.name === p.file);
        if (i >= 0) {
          this.select(i);
          goTo(this.view, p.line, p.column);
        }
      } }, h("code", null, `${p.file}${p.line ? `:${p.line}` : ""}${p.column ? `:${p.column}` : ""}`), " ", p.message)))));
  }

  private async save(): Promise<void> {
    if (this.working) return;
    this.working = true;
    this.err.clear();
    const files = this.contents();
    try {
      this.saveBtn.disabled = true;
      this.saveBtn.textContent = "Saving…";
      const res = await apps.saveDraft({ idOrName: this.app.id, files: files.map((f) => ({ name: f.name, content: utf8(f.content) })) });
      this.markSaved(files);
      this.setProblems(res.problems);
      this.updated(res.app!);
      toast(res.problems.length ? `Draft saved with ${res.problems.length} problem${res.problems.length === 1 ? "" : "s"}` : "Draft saved");
    } catch (err) {
      this.err.show(`Could not save the draft: ${message(err)}`);
      const p = problemsOf(err);
      if (p.length) this.setProblems(p);
    } finally {
      this.working = false;
      this.saveBtn.disabled = false;
      this.saveBtn.textContent = "Save";
    }
  }

  private markSaved(files: { name: string; content: string }[]): void {
    for (const f of this.files) f.saved = files.find((x) => x.name === f.name)?.content ?? f.saved;
    this.savedNames = files.map((f) => f.name);
  }

  private async deploy(): Promise<void> {
    if (this.working) return;
    this.working = true;
    this.err.clear();
    const files = this.contents();
    const rows = new Map<DeployStage, HTMLElement>();
    const list = h("ol", { class: "stages" }, stages.map(([s, label]) => {
      const row = h("li", { class: "stage pending", "data-stage": label.toLowerCase().split(" ")[0] }, h("span", { class: "mark", "aria-hidden": "true" }), h("strong", null, label), h("span", { class: "msg muted" }));
      rows.set(s, row);
      return row;
    }));
    const deps = h("p", { class: "deploy-deps muted", hidden: true });
    const result = h("div", { class: "deploy-result" });
    replace(this.progress, h("h2", null, "Deploy"), list, deps, result);
    this.deployBtn.disabled = true;
    this.deployBtn.textContent = "Deploying…";
    let next = 0;
    try {
      for await (const r of apps.deploy({ idOrName: this.app.id, files: files.map((f) => ({ name: f.name, content: utf8(f.content) })) })) {
        const row = rows.get(r.stage);
        if (row) {
          row.className = "stage done";
          row.querySelector(".msg")!.textContent = `${r.message} (${(Number(r.elapsedMicros) / 1000).toFixed(0)} ms)`;
        }
        if (r.stage === DeployStage.VALIDATE && r.packages.length) {
          deps.textContent = `Dependencies: ${packageList(r.packages)}`;
          deps.hidden = false;
        }
        next = stages.findIndex(([s]) => s === r.stage) + 1;
        if (r.stage === DeployStage.LIVE) {
          replace(result, r.unchanged ? "Already deployed: nothing changed. " : "Live at ",
            h("a", { href: r.url, target: "_blank", rel: "noopener", class: "live-url" }, r.url));
        }
      }
      this.markSaved(files);
      this.setProblems([]);
      const fresh = await apps.getApp({ idOrName: this.app.id });
      this.updated(fresh.app!);
      this.panels.deployed();
      toast("Deployed");
    } catch (err) {
      const failed = stages[next] ? rows.get(stages[next][0]) : undefined;
      if (failed) failed.className = "stage failed";
      const p = problemsOf(err);
      if (p.length) {
        this.setProblems(p);
        replace(result, h("span", { class: "error-text" },
          `Deploy stopped at ${stages[next]?.[1].toLowerCase() ?? "validation"}: fix the ${p.length} problem${p.length === 1 ? "" : "s"} listed above, then deploy again.`));
      } else {
        replace(result, h("span", { class: "error-text", role: "alert" }, `Deploy failed: ${message(err)}`));
        // A deploy that failed past validation may have changed the app
        // (at the warm stage: the files are the draft, and the version
        // before serves again): show it as the server has it.
        apps.getApp({ idOrName: this.app.id }).then((fresh) => this.updated(fresh.app!), () => {});
      }
    } finally {
      this.working = false;
      this.deployBtn.disabled = false;
      this.deployBtn.textContent = "Deploy";
    }
  }
}
