// The Database page and the per-app database setting. They need the
// platform's DatabaseService; until it exists the page says so.
import { h } from "../dom";
import type { App } from "../gen/gofastapi/v1/apps_pb";
import type { PageContext } from "../nav";

export function databasePage(_ctx: PageContext): Node {
  return h("section", null, h("h1", null, "Database"),
    h("p", { class: "muted" }, "This platform does not offer databases yet."));
}

/** databaseSetting is the app's database choice in its settings, if databases exist. */
export function databaseSetting(_ctx: PageContext, _app: () => App): Node | null {
  return null;
}
