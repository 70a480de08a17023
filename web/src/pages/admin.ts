// Admin: platform stats, users (create, promote/demote, delete), public
// signups, the import and dependency allowlists, the activity feed.
import { admin, ago, bytes, message } from "../api";
import { busy, confirmByName, errorBox, h, replace, toast } from "../dom";
import type { Limits, Settings, UpdateSettingsResponse } from "../gen/gofastapi/v1/admin_pb";
import type { PageContext } from "../nav";

export async function adminPage(ctx: PageContext): Promise<Node> {
  if (!ctx.user.admin) {
    return h("section", null, h("h1", null, "Admin"), h("p", null, "Only admins can see this page."));
  }
  const o = { signal: ctx.signal };
  const [stats, settings, activity] = await Promise.all([admin.getStats({}, o), admin.getSettings({}, o), admin.listActivity({ limit: 50 }, o)]);
  const figure = (label: string, v: bigint | number | string) => h("div", { class: "figure" }, h("strong", null, String(v)), h("span", { class: "muted" }, label));
  return h("section", { class: "admin" }, h("h1", null, "Admin"),
    h("div", { class: "figures-grid", "aria-label": "Platform stats" },
      figure("users", stats.users), figure("admins", stats.admins), figure("apps", stats.apps), figure("deployed", stats.deployedApps),
      figure("running", stats.runningApps), figure("warm runners", stats.warmRunners), figure("templates", stats.templates),
      figure("sessions", stats.activeSessions), figure("platform storage", bytes(stats.databaseStorageBytes)),
      figure("user databases", stats.userDatabases), figure("user data", bytes(stats.userDatabaseStorageBytes))),
    await usersSection(ctx),
    settingsSection(settings.settings!),
    h("h2", null, "Activity"),
    h("ol", { class: "activity", "aria-label": "Activity" }, activity.events.length === 0 ? h("li", { class: "muted" }, "Nothing yet.") :
      activity.events.map((e) => h("li", null, h("span", { class: "muted" }, ago(e.time)), " ", h("strong", null, e.actor), " ",
        h("code", null, e.kind), " ", e.subject, e.detail ? h("span", { class: "muted" }, ` · ${e.detail}`) : ""))));
}

async function usersSection(ctx: PageContext): Promise<HTMLElement> {
  const err = errorBox();
  const rows = h("tbody");
  const load = async () => {
    const res = await admin.listUsers({}, { signal: ctx.signal });
    replace(rows, res.users.map((s) => {
      const u = s.user!;
      const self = u.id === ctx.user.id;
      const role = h("button", { type: "button", class: "small", disabled: self, title: self ? "Nobody changes their own role" : "", onclick: async () => {
        err.clear();
        try {
          await busy(role, "…", () => admin.setAdmin({ user: u.id, admin: !u.admin }));
          toast(`${u.username} is ${u.admin ? "no longer an admin" : "now an admin"}`);
          void load();
        } catch (e) {
          err.show(message(e));
        }
      } }, u.admin ? "Demote" : "Make admin");
      const del = h("button", { type: "button", class: "small danger", disabled: self, onclick: async () => {
        if (!(await confirmByName(`Delete ${u.username}?`, `Their ${s.appCount} app(s), versions, logs and sessions are removed. This cannot be undone.`, u.username, "Delete user"))) return;
        err.clear();
        try {
          const r = await admin.deleteUser({ user: u.id });
          toast(`${r.username} deleted (${r.removed.map((x) => `${x.count} ${x.kind}`).join(", ")})`);
          void load();
        } catch (e) {
          err.show(message(e));
        }
      } }, "Delete");
      return h("tr", { "data-user": u.username },
        h("td", null, h("strong", null, u.username), u.admin ? h("span", { class: "badge" }, "admin") : null, u.email ? h("div", { class: "muted" }, u.email) : null),
        h("td", null, String(s.appCount), s.runningApps ? h("span", { class: "muted" }, ` (${s.runningApps} running)`) : null),
        h("td", null, ago(s.lastActiveAt)),
        h("td", null, tierSelect(u.id, u.username, s.limits, err, load)),
        h("td", { class: "row" }, role, del));
    }));
  };
  await load();
  const username = h("input", { name: "new-username", required: true, autocomplete: "off", "aria-label": "Username" });
  const password = h("input", { name: "new-password", type: "password", required: true, minlength: 8, autocomplete: "new-password", "aria-label": "Password" });
  const makeAdmin = h("input", { type: "checkbox" });
  const create = h("button", { type: "submit" }, "Create user");
  const form: HTMLFormElement = h("form", { class: "row wrap", "aria-label": "Create a user", onsubmit: async (e: Event) => {
    e.preventDefault();
    err.clear();
    try {
      const r = await busy(create, "Creating…", () => admin.createUser({ username: username.value.trim(), password: password.value, admin: makeAdmin.checked }));
      toast(`${r.user!.username} created`);
      form.reset();
      void load();
    } catch (e2) {
      err.show(message(e2));
    }
  } }, username, password, h("label", { class: "check" }, makeAdmin, "admin"), create);
  return h("section", { "aria-label": "Users" }, h("h2", null, "Users"), err,
    h("div", { class: "table-wrap" }, h("table", { class: "users" },
      h("thead", null, h("tr", null, h("th", null, "User"), h("th", null, "Apps"), h("th", null, "Last active"), h("th", null, "Tier"), h("th", null, ""))), rows)),
    form);
}

const tiers = ["free", "pro", "unlimited"];

// limitsText spells out a user's limits (0: none).
function limitsText(l: Limits | undefined): string {
  if (!l) return "";
  const cap = (n: number | bigint, what: string) => (Number(n) === 0 ? `any number of ${what}` : `${n} ${what}`);
  return `${cap(l.apps, "apps")}, ${cap(l.databases, "databases")}, ${Number(l.storageBytes) === 0 ? "unlimited storage" : `${bytes(l.storageBytes)} of storage`}, ` +
    (l.requestsPerMinute === 0 ? "any number of requests" : `${l.requestsPerMinute} requests a minute`);
}

// tierSelect puts a user on a tier (free, pro, unlimited); limits set to
// numbers of their own (the CLI's admin limits) show as custom until then.
function tierSelect(user: string, username: string, l: Limits | undefined, err: ReturnType<typeof errorBox>, reload: () => Promise<void>): HTMLElement {
  const current = l?.tier ?? "free";
  const options = (tiers.includes(current) ? tiers : [current, ...tiers]).map((t) =>
    h("option", { value: t, selected: t === current, disabled: !tiers.includes(t) }, t));
  const sel: HTMLSelectElement = h("select", { "aria-label": `Tier of ${username}`, title: limitsText(l), onchange: async () => {
    err.clear();
    sel.disabled = true;
    try {
      const r = await admin.setLimits({ user, tier: sel.value });
      toast(`${username} is on the ${r.limits!.tier} tier: ${limitsText(r.limits)}`);
    } catch (e) {
      err.show(message(e));
    }
    void reload();
  } }, ...options);
  return sel;
}

function settingsSection(s: Settings): HTMLElement {
  const err = errorBox();
  const signups = h("input", { type: "checkbox", checked: s.publicSignups, onchange: async () => {
    err.clear();
    try {
      const r = await admin.updateSettings({ publicSignups: signups.checked });
      toast(r.settings!.publicSignups ? "Anyone can sign up" : "Only admins create users now");
    } catch (e) {
      signups.checked = !signups.checked;
      err.show(message(e));
    }
  } });
  const index = s.packageIndex
    ? h("p", { class: "muted", "data-testid": "package-index" }, "Dependencies are installed from the package index ", h("code", null, s.packageIndex), ".")
    : h("p", { class: "note", "data-testid": "package-index" }, "No package index is configured: apps cannot declare dependencies until the platform is started with ",
      h("code", null, "--package-index"), ".");
  return h("section", { class: "stack", "aria-label": "Settings" }, h("h2", null, "Settings"),
    h("label", { class: "check" }, signups, "Public signups: anyone may create an account (when off, only admins create users)"),
    allowlist(s, {
      title: "Import allowlist", label: "Allowed imports", saveLabel: "Save imports",
      hint: "Module names separated by spaces; a package allows its submodules; * allows every import.",
      names: (x) => x.allowedImports, customized: (x) => x.allowedImportsCustomized,
      save: (modules) => admin.updateSettings({ allowedImports: { modules } }), reset: () => admin.updateSettings({ resetAllowedImports: true }),
      saved: "Allowed imports saved; they apply to the next deploy", wasReset: "Allowed imports reset to the defaults",
    }),
    allowlist(s, {
      title: "Dependency allowlist", label: "Allowed packages", saveLabel: "Save packages", intro: index,
      hint: "Distribution names as on the package index (such as python-dateutil), separated by spaces: the packages an app's requirements.txt may name, and those they need. Packages the platform's Python already has need no entry.",
      names: (x) => x.allowedPackages, customized: (x) => x.allowedPackagesCustomized,
      save: (packages) => admin.updateSettings({ allowedPackages: { packages } }), reset: () => admin.updateSettings({ resetAllowedPackages: true }),
      saved: "Dependency allowlist saved; it applies to the next deploy", wasReset: "Dependency allowlist reset to the defaults",
    }));
}

interface AllowlistSpec {
  title: string;
  /** label names the text area. */
  label: string;
  saveLabel: string;
  hint: string;
  intro?: Node;
  names: (s: Settings) => string[];
  customized: (s: Settings) => boolean;
  save: (names: string[]) => Promise<UpdateSettingsResponse>;
  reset: () => Promise<UpdateSettingsResponse>;
  /** saved and wasReset are the toasts after a save and a reset. */
  saved: string;
  wasReset: string;
}

// allowlist edits one of the platform's allowlists (imports, dependencies):
// names separated by spaces, saved whole, or reset to the built-in defaults.
function allowlist(s: Settings, spec: AllowlistSpec): HTMLElement {
  const err = errorBox();
  const names = h("textarea", { rows: 4, "aria-label": spec.label, spellcheck: "false" }, spec.names(s).join(" "));
  const state = h("small", { class: "muted" });
  const show = (x: Settings) => {
    names.value = spec.names(x).join(" ");
    state.textContent = spec.customized(x) ? "Customized." : "The defaults are in force.";
  };
  show(s);
  const save = h("button", { type: "button", onclick: async () => {
    err.clear();
    try {
      const r = await busy(save, "Saving…", () => spec.save(names.value.split(/[\s,]+/).filter(Boolean)));
      show(r.settings!);
      toast(spec.saved);
    } catch (e) {
      err.show(message(e));
    }
  } }, spec.saveLabel);
  const reset = h("button", { type: "button", onclick: async () => {
    err.clear();
    try {
      const r = await busy(reset, "Resetting…", spec.reset);
      show(r.settings!);
      toast(spec.wasReset);
    } catch (e) {
      err.show(message(e));
    }
  } }, "Reset to defaults");
  return h("section", { class: "stack allowlist", "aria-label": spec.title }, h("h3", null, spec.title), spec.intro,
    h("label", { class: "field" }, h("span", null, spec.label), names, h("small", { class: "muted" }, spec.hint)),
    state, err, h("div", { class: "row" }, save, reset));
}
