// The editor's assistant: a chat with a language model of the user's own
// (bring your own key) that reads the user's apps, logs and databases and
// proposes changes, shown as diffs for the user to accept (with the API's
// own calls: CreateApp, SaveDraft, DeleteApp) or reject. Each chat is
// stored as the user's, with the tools its replies used and what they
// proposed: the list of past conversations opens one again to go on with
// it, and a proposal not decided yet can be accepted or rejected then.
// Each decision is recorded (DecideProposal), once.
import { ago, apps, assistant, date, isAbort, message, text, utf8 } from "../api";
import { busy, confirmByName, dialog, errorBox, field, h, replace, toast } from "../dom";
import type { App, SaveDraftResponse } from "../gen/gofastapi/v1/apps_pb";
import { AssistantProvider, ProposalDecision, ProposalKind, type AssistantSettings, type Conversation, type FileChange, type Proposal, type ToolUse } from "../gen/gofastapi/v1/assistant_pb";
import { leaving, navigate, type PageContext } from "../nav";

type Files = { name: string; content: string }[];

/** Load replaces the editor's files; saved, when given, is the draft they were saved as. */
export type Load = (files: Files, saved?: SaveDraftResponse) => void;

const defaultModel: Record<string, string> = { anthropic: "claude-sonnet-4-5", openai: "gpt-4o" };

/**
 * Stored says where a proposal is kept: its conversation (known once the
 * reply's first event came), the index of its message and its own index
 * there. ready settles once the reply is over, and so stored.
 */
type Stored = { conversation: () => string; message: number; proposal: number; ready: Promise<unknown> };

const kindLabel: Record<number, string> = {
  [ProposalKind.CREATE_APP]: "Create app",
  [ProposalKind.UPDATE_APP]: "Update app",
  [ProposalKind.DELETE_APP]: "Delete app",
};

export function assistantPanel(ctx: PageContext, app: () => App, load: Load, dirty: () => boolean) {
  const el = h("div", { class: "panel assistant" });
  let settings: AssistantSettings | undefined;
  let editing = false;
  let loading = false;
  const history: { role: string; content: string }[] = [];
  // conversationId is the stored conversation the chat continues ("": the
  // next message starts one); the server says it in each reply's first event.
  let conversationId = "";
  // answering stops the reply being written, when the chat is cleared or
  // another conversation opened under it.
  let answering: AbortController | null = null;
  let conversations: Conversation[] = [];
  let listed = false;

  const err = errorBox();
  const log = h("ol", { class: "chat", role: "log", "aria-label": "Conversation" });
  const input = h("textarea", { name: "assistant-message", rows: 3, "aria-label": "Message to the assistant", placeholder: "Ask about this app, or for a change" });
  const send = h("button", { type: "submit", class: "primary" }, "Send");
  const model = h("span", { class: "muted" });
  const scroll = () => (log.scrollTop = log.scrollHeight);
  const pastErr = errorBox();
  const pastList = h("ul", { class: "conversations", "aria-label": "Past conversations" });
  const pastNone = h("p", { class: "muted", hidden: true }, "No conversations yet: each chat is kept here to go on with later.");
  const pastCount = h("span", { class: "muted" });
  const past = h("details", { class: "past" }, h("summary", null, "Past conversations ", pastCount), pastErr, pastNone, pastList);

  /** clear empties the chat, stops a reply being written, and forgets the conversation: the next message starts a new one. */
  const clear = () => {
    answering?.abort();
    answering = null;
    history.length = 0;
    conversationId = "";
    log.replaceChildren();
    err.clear();
    showList();
  };

  const showList = () => {
    pastCount.textContent = listed ? `(${conversations.length})` : "";
    pastNone.hidden = !listed || conversations.length > 0;
    pastList.hidden = conversations.length === 0;
    replace(pastList, conversations.map(conversationItem));
  };

  let listSeq = 0;
  const refreshList = async () => {
    const seq = ++listSeq;
    try {
      const r = await assistant.listConversations({}, { signal: ctx.signal });
      if (seq !== listSeq) return;
      pastErr.clear();
      conversations = r.conversations;
      listed = true;
      showList();
    } catch (e) {
      if (isAbort(e) || seq !== listSeq) return;
      pastErr.show(`Could not list your conversations: ${message(e)}`);
    }
  };

  const conversationItem = (c: Conversation): HTMLElement => {
    const current = c.id === conversationId;
    const name = c.title || "Untitled";
    const when = date(c.updatedAt);
    return h("li", { class: `conversation${current ? " current" : ""}`, "data-conversation": c.id },
      h("button", { type: "button", class: "link", "aria-current": current ? "true" : undefined,
        onclick: (e: Event) => void openConversation(c.id, e.currentTarget as HTMLButtonElement) }, name),
      h("small", { class: "muted" },
        c.app ? [h("code", null, c.app), " · "] : null,
        h("time", { datetime: when?.toISOString(), title: when?.toLocaleString() }, ago(when)),
        ` · ${c.messageCount} message${c.messageCount === 1 ? "" : "s"}`),
      h("button", { type: "button", class: "small danger", "aria-label": `Delete conversation: ${name}`,
        onclick: (e: Event) => void deleteConversation(c, name, e.currentTarget as HTMLButtonElement) }, "Delete"));
  };

  /** openConversation shows a stored conversation's messages in the chat, to go on with it. */
  const openConversation = async (id: string, button: HTMLButtonElement) => {
    pastErr.clear();
    try {
      const r = await busy(button, "Opening…", () => assistant.getConversation({ id }, { signal: ctx.signal }));
      clear();
      conversationId = id;
      (r.conversation?.messages ?? []).forEach((m, i) => {
        history.push({ role: m.role, content: m.content });
        log.append(m.role === "user" ? h("li", { class: "msg user" }, m.content)
          : h("li", { class: "msg assistant" }, m.content ? h("div", { class: "text" }, m.content) : null,
            m.tools.map(toolLine), m.proposals.map((p, j) => p.pending
              ? proposalCard(p, { conversation: () => id, message: i, proposal: j, ready: Promise.resolve() }, true)
              : pastProposal(p))));
      });
      showList();
      scroll();
      input.focus();
    } catch (e) {
      if (isAbort(e)) return;
      pastErr.show(`Could not open the conversation: ${message(e)}`);
      void refreshList();
    }
  };

  const deleteConversation = async (c: Conversation, name: string, button: HTMLButtonElement) => {
    if ((await dialog("Delete this conversation?", h("p", null, `“${name}” and its ${c.messageCount} message${c.messageCount === 1 ? "" : "s"} are deleted. This cannot be undone.`),
      [{ label: "Cancel" }, { label: "Delete", kind: "danger" }])) !== "Delete") return;
    pastErr.clear();
    // A reply still being written would store the conversation again.
    if (c.id === conversationId) answering?.abort();
    try {
      await busy(button, "Deleting…", () => assistant.deleteConversation({ id: c.id }, { signal: ctx.signal }));
      if (c.id === conversationId) clear();
      toast("Conversation deleted");
    } catch (e) {
      if (isAbort(e)) return;
      pastErr.show(`Could not delete the conversation: ${message(e)}`);
    }
    await refreshList();
  };

  const ask = async () => {
    const q = input.value.trim();
    if (!q || send.disabled) return;
    err.clear();
    history.push({ role: "user", content: q });
    const question = h("li", { class: "msg user" }, q);
    const reply = h("li", { class: "msg assistant", "aria-busy": "true" });
    log.append(question, reply);
    input.value = "";
    scroll();
    let full = "";
    let piece: HTMLElement | null = null;
    let stored = false;
    // The reply is stored at the index of the messages sent; its proposals
    // are decided for the record once it is.
    const at = history.length;
    let replyConversation = "";
    let proposals = 0;
    let over = () => {};
    const ready = new Promise<void>((r) => (over = r));
    const ctl = new AbortController();
    const stop = () => ctl.abort();
    ctx.signal.addEventListener("abort", stop);
    answering = ctl;
    await busy(send, "Answering…", async () => {
      try {
        for await (const r of assistant.chat({ messages: history, app: app().name, conversationId }, { signal: ctl.signal })) {
          if (ctl.signal.aborted) return;
          const ev = r.event;
          if (ev.case === "conversationId") {
            // The stored conversation: the next message goes on with it.
            conversationId = replyConversation = ev.value;
            stored = true;
          } else if (ev.case === "text") {
            full += ev.value;
            if (!piece) reply.append((piece = h("div", { class: "text" })));
            piece.textContent += ev.value;
          } else if (ev.case === "toolUse") {
            piece = null;
            reply.append(toolLine(ev.value));
          } else if (ev.case === "proposal") {
            piece = null;
            reply.append(proposalCard(ev.value, { conversation: () => replyConversation, message: at, proposal: proposals++, ready }));
          }
          scroll();
        }
      } catch (e) {
        if (isAbort(e)) return;
        err.show(message(e));
        if (!full) {
          // Unanswered: out of the conversation, back in the box to send again.
          history.pop();
          question.classList.add("unanswered");
          if (!input.value) input.value = q;
        }
      } finally {
        over();
        reply.removeAttribute("aria-busy");
        if (!reply.firstChild) reply.remove();
      }
      if (full && !ctl.signal.aborted) history.push({ role: "assistant", content: full });
    });
    ctx.signal.removeEventListener("abort", stop);
    if (answering === ctl) answering = null;
    if (stored && !ctx.signal.aborted) void refreshList();
  };

  const chat = h("div", { class: "stack" },
    h("div", { class: "row" }, model, h("button", { type: "button", class: "small", onclick: () => {
      editing = true;
      render();
    } }, "Change key"), h("button", { type: "button", class: "small", onclick: () => {
      clear();
      input.focus();
    } }, "New chat")),
    h("p", { class: "muted" }, "Ask about your apps, their logs and databases, or for a change: the assistant proposes it here for you to accept or reject."),
    past, log, err,
    h("form", { class: "stack chat-form", "aria-label": "Message", onsubmit: (e: Event) => {
      e.preventDefault();
      void ask();
    } }, input, h("div", { class: "row" }, send, h("small", { class: "muted" }, `${/Mac|iPhone|iPad/.test(navigator.platform) ? "⌘" : "Ctrl"}+Enter sends`))));
  input.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || !(e.ctrlKey || e.metaKey)) return;
    // Handled here: the editor's Ctrl+Enter (deploy) must not see it.
    e.preventDefault();
    void ask();
  });

  const render = () => {
    if (settings?.keySet && !editing) {
      model.textContent = `${settings.model} · ${settings.provider === AssistantProvider.OPENAI ? "OpenAI-compatible" : "Anthropic"}`;
      replace(el, chat);
      if (!listed) void refreshList();
    } else {
      replace(el, settingsForm(settings));
    }
  };

  const settingsForm = (s: AssistantSettings | undefined): HTMLElement => {
    const formErr = errorBox();
    const openai = s?.provider === AssistantProvider.OPENAI;
    const provider = h("select", { name: "assistant-provider" },
      h("option", { value: "anthropic", selected: !openai }, "Anthropic"),
      h("option", { value: "openai", selected: openai }, "OpenAI-compatible"));
    const modelIn = h("input", { name: "assistant-model", required: true, spellcheck: "false", autocomplete: "off",
      value: s?.model || defaultModel[provider.value] });
    const baseUrl = h("input", { name: "assistant-base-url", type: "url", spellcheck: "false", autocomplete: "off",
      value: s?.baseUrl ?? "", placeholder: "https://api.openai.com/v1" });
    const key = h("input", { name: "assistant-key", type: "password", "aria-label": "API key", autocomplete: "off", required: !s?.keySet });
    const baseField = field("Base URL", baseUrl, "The API's root; empty for OpenAI's own.");
    let before = provider.value;
    provider.addEventListener("change", () => {
      // Follow the provider with the model, unless the user chose one.
      if (!modelIn.value.trim() || modelIn.value === defaultModel[before]) modelIn.value = defaultModel[provider.value];
      before = provider.value;
      baseField.hidden = provider.value !== "openai";
    });
    baseField.hidden = provider.value !== "openai";
    const save = h("button", { type: "submit", class: "primary" }, "Save key");
    const set = (apiKey: string | undefined) => {
      const p = provider.value === "openai" ? AssistantProvider.OPENAI : AssistantProvider.ANTHROPIC;
      return assistant.setAssistantSettings({
        provider: p, model: modelIn.value.trim(), baseUrl: p === AssistantProvider.OPENAI ? baseUrl.value.trim() : "", apiKey,
      });
    };
    const form: HTMLFormElement = h("form", { class: "stack", "aria-label": "Assistant settings", onsubmit: async (e: Event) => {
      e.preventDefault();
      formErr.clear();
      try {
        // An empty key field keeps the stored key.
        const res = await busy(save, "Saving…", () => set(key.value.trim() || undefined));
        settings = res.settings;
        editing = false;
        toast("Assistant settings saved");
        render();
      } catch (e2) {
        formErr.show(message(e2));
      }
    } },
      h("h2", null, "Your model"),
      h("p", { class: "muted" }, "Bring your own key: it is stored encrypted and never shown again."),
      field("Provider", provider),
      field("Model", modelIn),
      baseField,
      field("API key", key, s?.keySet ? "A key is set: leave this empty to keep it." : undefined),
      formErr,
      h("div", { class: "row" }, save,
        s?.keySet ? h("button", { type: "button", onclick: () => {
          editing = false;
          render();
        } }, "Cancel") : null,
        s?.keySet ? h("button", { type: "button", class: "danger small", onclick: async (e: Event) => {
          formErr.clear();
          try {
            const res = await busy(e.currentTarget as HTMLButtonElement, "Removing…", () => set(""));
            settings = res.settings;
            toast("Key removed");
            render();
          } catch (e2) {
            formErr.show(message(e2));
          }
        } }, "Remove key") : null));
    return form;
  };

  /**
   * proposalCard shows a proposed change as diffs, to accept or reject;
   * the decision is recorded where the proposal is stored. earlier marks
   * one of a conversation opened again.
   */
  const proposalCard = (p: Proposal, at: Stored, earlier = false): HTMLElement => {
    const cardErr = errorBox();
    const accept = h("button", { type: "button", class: "small primary" }, "Accept");
    const reject = h("button", { type: "button", class: "small" }, "Reject");
    const buttons = h("div", { class: "row" }, accept, reject);
    const done = (decision: ProposalDecision, ...what: (Node | string)[]) => {
      replace(buttons, h("span", { class: "muted decided", role: "status" }, ...what));
      void record(at, decision, cardErr);
    };
    reject.onclick = () => done(ProposalDecision.REJECTED, "Rejected");
    accept.onclick = async () => {
      cardErr.clear();
      const open = p.app === app().name || p.app === app().id;
      if (p.kind === ProposalKind.DELETE_APP) {
        if (!(await confirmByName(`Delete ${p.app}?`, "The app, its versions, logs and URL are removed. This cannot be undone.", p.app, "Delete app"))) return;
      } else if (p.kind === ProposalKind.UPDATE_APP && open && dirty()) {
        const choice = await dialog("Replace your unsaved changes?", h("p", null, "The editor has changes you have not saved. Accepting saves the proposal on the app's saved draft and opens it in the editor in their place."),
          [{ label: "Cancel" }, { label: "Replace", kind: "danger" }]);
        if (choice !== "Replace") return;
      }
      reject.disabled = true;
      try {
        await busy(accept, "Accepting…", async () => {
          switch (p.kind) {
            case ProposalKind.UPDATE_APP: {
              const cur = await apps.getApp({ idOrName: p.app });
              const base = (cur.draft ?? cur.deployed)?.files.map((f) => ({ name: f.name, content: text(f.content) })) ?? [];
              const since = p.files.filter((f) => (base.find((b) => b.name === f.name)?.content ?? "") !== f.oldContent).map((f) => f.name);
              if (since.length && (await dialog(`${p.app} changed since this was proposed`,
                h("p", null, `Accepting replaces ${since.join(", ")} with the proposal's version, and the changes made to ${since.length === 1 ? "it" : "them"} since are lost.`),
                [{ label: "Cancel" }, { label: "Replace", kind: "danger" }])) !== "Replace") {
                reject.disabled = false;
                return;
              }
              const files = applied(base, p.files);
              const res = await apps.saveDraft({ idOrName: cur.app!.id, files: files.map((f) => ({ name: f.name, content: utf8(f.content) })) });
              if (cur.app!.id === app().id) load(files, res);
              const n = res.problems.length;
              toast(n ? `Draft saved with ${n} problem${n === 1 ? "" : "s"}: fix, then deploy` : "Draft saved: review and deploy");
              done(ProposalDecision.ACCEPTED, "Accepted");
              break;
            }
            case ProposalKind.CREATE_APP: {
              const files = p.files.filter((f) => !f.removed).map((f) => ({ name: f.name, content: utf8(f.newContent) }));
              const res = await apps.createApp({ name: p.app, files });
              const name = res.app!.name;
              toast(`Created ${name}: open it from your apps to deploy`);
              done(ProposalDecision.ACCEPTED, "Accepted: ", h("a", { href: `/apps/${encodeURIComponent(name)}` }, `open ${name}`));
              break;
            }
            case ProposalKind.DELETE_APP:
              await apps.deleteApp({ idOrName: p.app });
              toast(`${p.app} deleted`);
              done(ProposalDecision.ACCEPTED, "Accepted");
              if (open) {
                leaving();
                navigate("/");
              }
              break;
            default:
              throw new Error("This kind of change is not known to this editor: reload the page.");
          }
        });
      } catch (e) {
        reject.disabled = false;
        cardErr.show(`Could not accept: ${message(e)}`);
      }
    };
    const n = p.problems.length;
    return h("div", { class: "proposal", role: "group", "aria-label": `Proposal: ${p.summary}` },
      h("div", { class: "row" }, h("strong", null, kindLabel[p.kind] ?? "Change"), h("code", null, p.app),
        earlier ? h("small", { class: "muted" }, "proposed earlier, not decided yet") : null),
      p.summary ? h("p", { class: "summary" }, p.summary) : null,
      p.files.map(fileDiff),
      n ? h("div", { class: "problems" },
        h("p", { class: "error-text" }, `Validation found ${n} problem${n === 1 ? "" : "s"}: accepting keeps ${n === 1 ? "it" : "them"}, and the app will not deploy until ${n === 1 ? "it is" : "they are"} fixed.`),
        h("ul", null, p.problems.map((x) => h("li", { class: "problem" },
          h("code", null, `${x.file}${x.line ? `:${x.line}` : ""}`), `: ${x.message}`)))) : null,
      cardErr, buttons);
  };

  /** record stores decision on the proposal at at, once its reply is stored; a failure is shown on the card. */
  const record = async (at: Stored, decision: ProposalDecision, cardErr: ReturnType<typeof errorBox>) => {
    await at.ready;
    const conversationId = at.conversation();
    if (!conversationId || ctx.signal.aborted) return;
    try {
      await assistant.decideProposal({ conversationId, message: at.message, proposal: at.proposal, decision }, { signal: ctx.signal });
    } catch (e) {
      if (isAbort(e)) return;
      cardErr.show(`The decision could not be recorded in the conversation: ${message(e)}`);
    }
  };

  return {
    el,
    open: () => {
      if (settings || loading) return;
      loading = true;
      replace(el, h("p", { class: "muted" }, "Loading…"));
      assistant.getAssistantSettings({}, { signal: ctx.signal }).then((r) => {
        loading = false;
        settings = r.settings;
        render();
      }, (e) => {
        loading = false;
        if (ctx.signal.aborted) return;
        const box = errorBox();
        box.show(`Could not load the assistant's settings: ${message(e)}`);
        replace(el, box);
      });
    },
  };
}

/** pastProposal shows a decided proposal of a stored conversation, or one whose files were not kept (too large): what it changed, and the decision. */
function pastProposal(p: Proposal): HTMLElement {
  const n = p.problems.length;
  const decided = p.decision === ProposalDecision.ACCEPTED ? "Accepted" : p.decision === ProposalDecision.REJECTED ? "Rejected"
    : "Proposed earlier: its files were not kept, so it can no longer be accepted here";
  return h("div", { class: "proposal past", role: "group", "aria-label": `Earlier proposal: ${p.summary}` },
    h("div", { class: "row" }, h("strong", null, kindLabel[p.kind] ?? "Change"), h("code", null, p.app)),
    p.summary ? h("p", { class: "summary" }, p.summary) : null,
    p.files.length ? h("p", { class: "muted" }, "Files: ", p.files.map((f, i) => [i ? ", " : "", h("code", null, f.name), f.removed ? " (removed)" : ""])) : null,
    n ? h("p", { class: "error-text" }, `Validation found ${n === 5 ? "5 or more" : n} problem${n === 1 ? "" : "s"}, first `,
      h("code", null, `${p.problems[0].file}${p.problems[0].line ? `:${p.problems[0].line}` : ""}`), `: ${p.problems[0].message}`) : null,
    h("span", { class: "muted decided" }, decided));
}

function toolLine(t: ToolUse): HTMLElement {
  return h("div", { class: `tool${t.failed ? " failed" : ""}`, title: t.arguments }, `${t.name} → ${t.result}`);
}

/** applied is files with the changes made: changed files replaced, new ones added, removed ones dropped. */
function applied(files: Files, changes: FileChange[]): Files {
  const out = files.filter((f) => !changes.some((c) => c.removed && c.name === f.name))
    .map((f) => ({ name: f.name, content: changes.find((c) => !c.removed && c.name === f.name)?.newContent ?? f.content }));
  for (const c of changes) if (!c.removed && !out.some((f) => f.name === c.name)) out.push({ name: c.name, content: c.newContent });
  return out;
}

/** fileDiff shows one file's change as a unified line diff, with 3 lines of context. */
function fileDiff(f: FileChange): HTMLElement {
  const ops: Op[] = f.removed ? lines(f.oldContent).map((l) => ["-", l] as Op) : diffLines(lines(f.oldContent), lines(f.newContent));
  const adds = ops.filter((o) => o[0] === "+").length;
  const dels = ops.filter((o) => o[0] === "-").length;
  const state = f.removed ? "removed" : f.oldContent === "" ? "new" : "changed";
  const rows: HTMLElement[] = [];
  const near = (i: number) => ops.slice(Math.max(0, i - 3), i + 4).some((o) => o[0] !== " ");
  for (let i = 0; i < ops.length;) {
    if (near(i)) {
      const [op, line] = ops[i];
      rows.push(h("div", { class: `dl ${op === "+" ? "add" : op === "-" ? "del" : "ctx"}` }, `${op} ${line}`));
      i++;
      continue;
    }
    let j = i;
    while (j < ops.length && !near(j)) j++;
    if (j - i === 1) {
      rows.push(h("div", { class: "dl ctx" }, `  ${ops[i][1]}`));
      i = j;
      continue;
    }
    rows.push(h("div", { class: "dl fold" }, `  ⋯ ${j - i} unchanged line${j - i === 1 ? "" : "s"}`));
    i = j;
  }
  return h("details", { class: "file-diff", open: true },
    h("summary", null, h("code", null, f.name), " ", h("span", { class: "muted" }, `${state} · +${adds} −${dels}`)),
    h("div", { class: "diff", role: "region", "aria-label": `Changes to ${f.name}`, tabindex: "0" }, h("div", { class: "diff-lines" }, rows)));
}

type Op = [" " | "+" | "-", string];

function lines(s: string): string[] {
  if (s === "") return [];
  const l = s.split("\n");
  if (l[l.length - 1] === "") l.pop();
  return l;
}

/** diffLines is a line diff of a and b: the longest common subsequence kept, the rest removed or added. */
export function diffLines(a: string[], b: string[]): Op[] {
  // The common head and tail need no table: most edits are small.
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let ea = a.length, eb = b.length;
  while (ea > start && eb > start && a[ea - 1] === b[eb - 1]) {
    ea--;
    eb--;
  }
  const x = a.slice(start, ea), y = b.slice(start, eb);
  const out: Op[] = a.slice(0, start).map((l) => [" ", l]);
  const n = x.length, m = y.length, w = m + 1;
  if (n * m > 4_000_000) {
    // Too large to compare line by line: all out, all in.
    for (const l of x) out.push(["-", l]);
    for (const l of y) out.push(["+", l]);
  } else {
    // t[i*w+j] is the length of the longest common subsequence of x[i:] and y[j:].
    const t = new Uint32Array((n + 1) * w);
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        t[i * w + j] = x[i] === y[j] ? t[(i + 1) * w + j + 1] + 1 : Math.max(t[(i + 1) * w + j], t[i * w + j + 1]);
      }
    }
    let i = 0, j = 0;
    while (i < n && j < m) {
      if (x[i] === y[j]) {
        out.push([" ", x[i]]);
        i++;
        j++;
      } else if (t[(i + 1) * w + j] >= t[i * w + j + 1]) out.push(["-", x[i++]]);
      else out.push(["+", y[j++]]);
    }
    while (i < n) out.push(["-", x[i++]]);
    while (j < m) out.push(["+", y[j++]]);
  }
  for (const l of a.slice(ea)) out.push([" ", l]);
  return out;
}
