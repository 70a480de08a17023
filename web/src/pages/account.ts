// Account: the caller's sessions, "log out everywhere", password change.
import { ago, auth, message } from "../api";
import { busy, errorBox, field, h, replace, toast } from "../dom";
import { navigate, setUser, type PageContext } from "../nav";

export async function accountPage(ctx: PageContext): Promise<Node> {
  const err = errorBox();
  const rows = h("tbody");
  const load = async () => {
    const res = await auth.listSessions({}, { signal: ctx.signal });
    replace(rows, res.sessions.map((s) => h("tr", { "data-current": String(s.current) },
      h("td", null, s.userAgent ? short(s.userAgent) : "unknown client", s.current ? h("span", { class: "pill live" }, "this browser") : null),
      h("td", null, s.clientAddress || "—"),
      h("td", null, `signed in ${ago(s.createdAt)}`),
      h("td", null, `active ${ago(s.lastSeenAt)}`),
      h("td", null, s.current ? null : h("button", { type: "button", class: "small", onclick: async () => {
        try {
          await auth.revokeSession({ id: s.id });
          toast("Session ended");
          void load();
        } catch (e) {
          err.show(message(e));
        }
      } }, "End")))));
  };
  await load();
  const everywhere = h("button", { type: "button", class: "danger", onclick: async () => {
    try {
      await busy(everywhere, "Logging out…", () => auth.logout({ everywhere: true }));
      setUser(undefined);
      navigate("/login");
    } catch (e) {
      err.show(message(e));
    }
  } }, "Log out everywhere");

  const pwErr = errorBox();
  const current = h("input", { type: "password", autocomplete: "current-password", required: true });
  const next = h("input", { type: "password", autocomplete: "new-password", required: true, minlength: 8 });
  const change = h("button", { type: "submit" }, "Change password");
  const form: HTMLFormElement = h("form", { class: "stack narrow", "aria-label": "Change password", onsubmit: async (e: Event) => {
    e.preventDefault();
    pwErr.clear();
    try {
      const res = await busy(change, "Changing…", () => auth.changePassword({ currentPassword: current.value, newPassword: next.value }));
      form.reset();
      toast(`Password changed; ${res.revokedSessions} other session${res.revokedSessions === 1 ? "" : "s"} ended`);
      void load();
    } catch (e2) {
      pwErr.show(message(e2));
    }
  } }, h("h2", null, "Password"),
    field("Current password", current),
    field("New password", next, "At least 8 characters. Your other sessions end."),
    pwErr, change);

  return h("section", null, h("h1", null, "Account"),
    h("p", null, "Signed in as ", h("strong", null, ctx.user.username), ctx.user.email ? ` (${ctx.user.email})` : "", ctx.user.admin ? " · admin" : ""),
    h("h2", null, "Sessions"), err,
    h("div", { class: "table-wrap" }, h("table", null, h("thead", null, h("tr", null, h("th", null, "Client"), h("th", null, "Address"), h("th", null, "Since"), h("th", null, "Last used"), h("th", null, ""))), rows)),
    h("p", null, everywhere), form);
}

function short(ua: string): string {
  const m = /(Chrome|Firefox|Safari|Edg|curl|gofastapi)[/ ]?[\d.]*/.exec(ua);
  return m ? m[0] : ua.slice(0, 40);
}
