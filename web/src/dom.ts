// A small DOM builder and the shared pieces of UI: notices, dialogs,
// buttons that show they are busy.

type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, unknown>;

/**
 * h builds an element. Attributes starting with "on" become listeners;
 * value, checked, disabled and similar set properties; everything else is
 * an attribute. Children may be nested arrays, strings or nothing.
 */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v as EventListener);
    } else if (["value", "checked", "disabled", "selected", "readOnly", "hidden"].includes(k)) {
      (el as unknown as Record<string, unknown>)[k] = v;
    } else if (k === "class") {
      el.className = String(v);
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** replace sets el's children. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** errorBox is an inline error shown where the failed action was. */
export function errorBox(): HTMLElement & { show(msg: string): void; clear(): void } {
  const el = h("div", { class: "error", role: "alert", hidden: true }) as unknown as HTMLElement & { show(msg: string): void; clear(): void };
  el.show = (msg: string) => {
    el.textContent = msg;
    el.hidden = false;
  };
  el.clear = () => {
    el.textContent = "";
    el.hidden = true;
  };
  return el;
}

/** busy disables button while action runs and restores it after. */
export async function busy<T>(button: HTMLButtonElement, label: string, action: () => Promise<T>): Promise<T> {
  const before = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = label;
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = before;
  }
}

let toastTimer = 0;

/** toast shows a short confirmation at the bottom of the screen. */
export function toast(msg: string): void {
  let el = document.getElementById("toast");
  if (!el) {
    el = h("div", { id: "toast", role: "status", "aria-live": "polite" });
    document.body.appendChild(el);
  }
  el.textContent = msg;
  el.classList.add("show");
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => el!.classList.remove("show"), 3000);
}

/**
 * dialog opens a modal with body and the given buttons; it resolves with
 * the label of the button pressed, or "" when dismissed with Escape.
 */
export function dialog(title: string, body: Child, buttons: { label: string; kind?: string; enabled?: () => boolean }[]): Promise<string> & { el: HTMLDialogElement } {
  const d = h("dialog", { class: "dialog", "aria-label": title });
  let resolve!: (v: string) => void;
  const p = new Promise<string>((r) => (resolve = r)) as Promise<string> & { el: HTMLDialogElement };
  const btns = buttons.map((b) =>
    h("button", { type: "button", class: b.kind ?? "", "data-label": b.label, onclick: () => close(b.label) }, b.label),
  );
  const refresh = () => buttons.forEach((b, i) => (btns[i].disabled = b.enabled ? !b.enabled() : false));
  const close = (v: string) => {
    d.close();
    d.remove();
    resolve(v);
  };
  d.addEventListener("cancel", (e) => {
    e.preventDefault();
    close("");
  });
  d.addEventListener("input", refresh);
  append(d, [h("h2", null, title), h("div", { class: "dialog-body" }, body), h("div", { class: "dialog-buttons" }, btns)]);
  document.body.appendChild(d);
  refresh();
  d.showModal();
  p.el = d;
  return p;
}

/** confirmByName asks the user to type name before a destructive action. */
export async function confirmByName(title: string, what: string, name: string, action: string): Promise<boolean> {
  const input = h("input", { type: "text", "aria-label": `Type ${name} to confirm`, autocomplete: "off", spellcheck: "false" });
  const res = dialog(title, [h("p", null, what), h("label", null, "Type ", h("code", null, name), " to confirm:", input)], [
    { label: "Cancel" },
    { label: action, kind: "danger", enabled: () => input.value === name },
  ]);
  input.focus();
  return (await res) === action;
}

let fieldSeq = 0;

/** field labels input, with an optional hint that screen readers read as its description. */
export function field(label: string, input: HTMLElement, hint?: string): HTMLElement {
  const id = input.id || `field-${++fieldSeq}`;
  input.id = id;
  let note: HTMLElement | null = null;
  if (hint) {
    note = h("small", { class: "muted", id: `${id}-hint` }, hint);
    input.setAttribute("aria-describedby", `${id}-hint`);
  }
  return h("div", { class: "field" }, h("label", { for: id }, label), input, note);
}
