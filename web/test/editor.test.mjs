// The web editor's scenario in a real Chromium (Debian's, headless,
// driven by playwright-core) against a real `gofastapi dev`: sign up,
// create an app from a template, break and fix it, deploy, use it, have
// the assistant (a scripted model) change it, go on with that stored
// conversation and delete it, change it, roll back, set a
// secret, look at the admin page (the import and dependency allowlists),
// and have a requirements.txt refused for a package off the allowlist.
// Screenshots of each page go to web/test-results/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { startDev } from "./server.mjs";

const shots = new URL("../test-results/", import.meta.url).pathname;
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
// The scenario starts from the Full-Stack Notes template, which needs the
// platform database (PLATFORM_MONGO_URI); GOFASTAPI_WEB_TEMPLATE=hello runs
// it on the Hello World template instead, without the database steps.
const TEMPLATE = process.env.GOFASTAPI_WEB_TEMPLATE ?? "notes";
const T = {
  notes: { line: "def page():", page: "Notes", db: true },
  hello: { line: "def root():", page: "Hello, world!", db: false },
}[TEMPLATE];

let dev, context, page, profile;
const consoleErrors = [];

before(async () => {
  mkdirSync(shots, { recursive: true });
  dev = await startDev();
  profile = mkdtempSync(join(tmpdir(), "gofastapi-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"],
    viewport: { width: 1366, height: 900 },
  });
  context.setDefaultTimeout(30_000);
  page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (err) => consoleErrors.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    // Messages of the app in the side preview are the app's, not the editor's.
    if (msg.location().url && !msg.location().url.startsWith(dev.url)) return;
    // The first call of a visit asks who is signed in; before signing up
    // the platform answers 401, which the browser logs, and so it does for
    // the wrong password the scenario tries on purpose. Those are expected.
    if (/status of 401/.test(msg.text()) && /AuthService\/(Me|Login)$/.test(msg.location().url)) return;
    // Likewise the reserved app name it tries first.
    if (/status of 400/.test(msg.text()) && /AppService\/CreateApp$/.test(msg.location().url)) return;
    // And the custom domain that has no CNAME record yet.
    if (/status of 400/.test(msg.text()) && /AppService\/AddDomain$/.test(msg.location().url)) return;
    // And the package name that is no distribution name, on the admin page.
    if (/status of 400/.test(msg.text()) && /AdminService\/UpdateSettings$/.test(msg.location().url)) return;
    consoleErrors.push(`console: ${msg.text()} (${msg.location().url})`);
  });
});

after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await dev?.stop();
});

async function shot(name, p = page) {
  await p.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

/** lineOf returns the CodeMirror line element whose text is text. */
function lineOf(text) {
  return page.locator(".cm-line", { hasText: text }).first();
}

/** appText fetches path of the app in a fresh tab and returns its body text. */
async function appText(url, path) {
  const p = await context.newPage();
  try {
    const res = await p.goto(url + path);
    return { status: res.status(), text: await p.locator("body").innerText() };
  } finally {
    await p.close();
  }
}

let failed = false;

/** step runs one step of the scenario; after a failure the rest are skipped, with a screenshot of where it failed. */
async function step(t, name, fn) {
  await t.test(name, async (st) => {
    if (failed) return st.skip("an earlier step failed");
    try {
      await fn();
    } catch (err) {
      failed = true;
      await shot(`failed-${name.replace(/[^a-z0-9]+/gi, "-").slice(0, 40)}`).catch(() => {});
      throw err;
    }
  });
}

test("the editor, end to end in Chromium", async (t) => {
  await step(t, "sign up: the first user is admin", async () => {
    await page.goto(dev.url);
    await page.waitForURL(/\/login$/);
    await shot("01-login");
    await page.getByRole("link", { name: "Create an account" }).click();
    await page.getByLabel("Username").fill("alice");
    await page.getByLabel("Password").fill("correct horse battery");
    await shot("02-signup");
    await page.getByRole("button", { name: "Sign up" }).click();
    await page.getByRole("heading", { name: "Your apps" }).waitFor();
    await assert.doesNotReject(page.locator(".who .badge", { hasText: "admin" }).waitFor());
    assert.ok(await page.getByRole("link", { name: "Admin" }).isVisible(), "an admin sees the Admin link");
    await shot("03-dashboard-empty");
  });

  await step(t, "create an app from a template", async () => {
    await page.getByRole("link", { name: "Create your first app" }).click();
    // A refused name is explained next to the form, in words to act on.
    await page.getByLabel("Name", { exact: true }).fill("www");
    await page.getByRole("button", { name: "Create app" }).click();
    await page.getByRole("alert").filter({ hasText: 'App name "www" is reserved by the platform: choose another' }).waitFor();
    await page.getByLabel("Name", { exact: true }).fill("notes");
    await page.getByLabel("From a template").check();
    await page.getByLabel("Template", { exact: true }).selectOption(TEMPLATE);
    await shot("04-new-app");
    await page.getByRole("button", { name: "Create app" }).click();
    await page.waitForURL(/\/apps\/notes$/);
    await page.locator(".cm-content").waitFor();
    assert.equal(await page.getByTestId("status").innerText(), "Not deployed");
  });

  await step(t, "a broken line is highlighted at its line, with a badge on its tab", async () => {
    const line = lineOf(T.line);
    await line.click();
    await page.keyboard.press("End");
    await page.keyboard.press("Backspace");
    assert.equal(await page.getByTestId("status").innerText(), "Unsaved changes");
    await page.keyboard.press("Control+s");
    await page.locator(".cm-lintRange-error").first().waitFor();
    const problem = await page.locator(".problems li").first().innerText();
    assert.match(problem, /app\.py:\d+/, "the problem names the file and line");
    assert.equal(await page.locator('.file-tab[data-file="app.py"] .badge.err').innerText(), "1");
    assert.ok(await page.locator(".cm-gutter-lint .cm-lint-marker-error").count() > 0, "the lint gutter marks the line");
    await shot("05-editor-problem");
  });

  await step(t, "fixed and saved with Ctrl+S: no problems left", async () => {
    await lineOf(T.line.slice(0, -1)).click();
    await page.keyboard.press("End");
    await page.keyboard.type(":");
    await page.keyboard.press("Control+s");
    await page.locator(".cm-lintRange-error").waitFor({ state: "detached" });
    assert.equal(await page.locator(".problems li").count(), 0);
    assert.equal(await page.locator(".file-tab .badge.err").count(), 0);
    await page.getByTestId("status").filter({ hasText: "Not deployed" }).waitFor();
  });

  let appURL;
  await step(t, "Ctrl+Enter deploys, stage by stage, to a URL", async () => {
    await page.locator(".cm-content").click();
    await page.keyboard.press("Control+Enter");
    await page.locator('.stage.done[data-stage="live"]').waitFor();
    for (const s of ["validate", "store", "publish", "route", "live"]) {
      assert.equal(await page.locator(`.stage[data-stage="${s}"]`).getAttribute("class"), "stage done", `stage ${s} is done`);
    }
    appURL = await page.locator(".live-url").getAttribute("href");
    assert.match(appURL, /^http:\/\/notes\.localhost:\d+$/);
    await page.getByTestId("status").filter({ hasText: "Up to date" }).waitFor();
    await shot("06-deployed");
  });

  await step(t, "the app answers at its URL", async () => {
    const r = await appText(appURL, "/");
    assert.equal(r.status, 200);
    assert.ok(r.text.includes(T.page), `the app's page says ${T.page}: ${r.text}`);
  });

  await step(t, "the assistant reads the app and proposes a change, accepted as a draft", async () => {
    // The model is the scripted one of fakellm.mjs, behind an
    // OpenAI-compatible API on a loopback port.
    const panel = page.locator("#panel-assistant");
    await page.getByRole("tab", { name: "Assistant" }).click();
    await panel.getByText("it is stored encrypted and never shown again").waitFor();
    assert.equal(await panel.getByLabel("Model").inputValue(), "claude-sonnet-4-5", "Anthropic and its model by default");
    assert.ok(await panel.getByLabel("Base URL").isHidden(), "Anthropic needs no base URL");
    await panel.getByLabel("Provider").selectOption("OpenAI-compatible");
    assert.equal(await panel.getByLabel("Model").inputValue(), "gpt-4o", "the model follows the provider");
    await panel.getByLabel("Model").fill("fake-model");
    assert.equal(await panel.getByLabel("Base URL").getAttribute("placeholder"), "https://api.openai.com/v1");
    await panel.getByLabel("Base URL").fill(`${dev.llm.url}/v1`);
    assert.equal(await panel.getByLabel("API key").getAttribute("type"), "password");
    await panel.getByLabel("API key").fill("sk-test");
    await panel.getByRole("button", { name: "Save key" }).click();

    // The key is never shown again; the form comes back with the rest.
    await panel.getByRole("button", { name: "Change key" }).click();
    assert.equal(await panel.getByLabel("Provider").inputValue(), "openai");
    assert.equal(await panel.getByLabel("Model").inputValue(), "fake-model");
    assert.equal(await panel.getByLabel("Base URL").inputValue(), `${dev.llm.url}/v1`);
    assert.equal(await panel.getByLabel("API key").inputValue(), "", "the key is not shown");
    await panel.getByRole("button", { name: "Cancel" }).click();

    await panel.getByLabel("Message to the assistant").fill("Add a /health route");
    await panel.getByLabel("Message to the assistant").press("Control+Enter");
    assert.match(await page.locator(".deploy-result").innerText(), /^Live at/, "Ctrl+Enter in the chat sends, it does not deploy again");
    await panel.locator(".msg.user", { hasText: "Add a /health route" }).waitFor();
    const reply = panel.locator(".msg.assistant").first();
    await reply.getByText("Let me look at the app.").waitFor();
    await reply.locator(".tool", { hasText: "get_app →" }).waitFor();
    const card = panel.getByRole("group", { name: "Proposal: Add a /health route" });
    await card.waitFor();
    await card.locator(".diff .add", { hasText: '+ @app.get("/health")' }).waitFor();
    assert.ok(await card.locator(".diff .ctx").count() > 0, "the diff shows unchanged lines around the change");
    assert.equal(await card.locator(".diff .del").count(), 0, "nothing removed");
    await reply.getByText("I proposed adding a /health route.").waitFor();
    await panel.getByRole("button", { name: "Send" }).waitFor();
    assert.ok(await panel.getByRole("button", { name: "Send" }).isEnabled(), "Send is back once the reply is over");
    await shot("06b-assistant-proposal");

    // What the model got: the key, the tools, and the tools' results.
    const reqs = dev.llm.requests;
    assert.equal(reqs.length, 3, "three calls: look, propose, conclude");
    for (const r of reqs) {
      assert.equal(r.authorization, "Bearer sk-test");
      assert.equal(r.body.model, "fake-model");
      assert.deepEqual(r.problems, []);
    }
    assert.ok(reqs[0].body.messages.some((m) => m.role === "user" && JSON.stringify(m.content).includes("Add a /health route")));
    const got = reqs[1].body.messages.at(-1);
    assert.equal(got.role, "tool");
    assert.equal(got.tool_call_id, "call_1");
    assert.match(JSON.stringify(got.content), /app\.py/, "get_app's result has the app's files");
    assert.equal(reqs[2].body.messages.at(-1).tool_call_id, "call_2", "update_app's result came back");

    await card.getByRole("button", { name: "Accept" }).click();
    await card.getByText("Accepted").waitFor();
    await page.locator("#toast", { hasText: "Draft saved: review and deploy" }).waitFor();
    await page.getByTestId("status").filter({ hasText: "Changes not deployed" }).waitFor();
    // The template's app.py may have a /health route of its own: the new
    // one is at the end.
    await page.locator(".cm-content").click();
    await page.keyboard.press("Control+End");
    const want = ['@app.get("/health")', "def health():", '    return {"ok": True}', ""];
    const last4 = () => page.locator(".cm-line").evaluateAll((ls) => ls.slice(-4).map((l) => l.textContent));
    await page.waitForFunction((w) => JSON.stringify([...document.querySelectorAll(".cm-line")].slice(-4).map((l) => l.textContent)) === w,
      JSON.stringify(want)).catch(() => {});
    const end = await last4();
    assert.deepEqual(end, want, "the editor ends with the accepted change");
    assert.equal(await page.getByTestId("status").innerText(), "Changes not deployed", "the draft is saved, not deployed");
    await shot("06c-assistant-accepted");
  });

  await step(t, "the assistant's conversations: listed, a new chat, opened again and gone on with, deleted", async () => {
    const panel = page.locator("#panel-assistant");
    const msgs = panel.locator(".msg");
    await panel.locator("summary", { hasText: "Past conversations" }).click();
    const list = panel.getByRole("list", { name: "Past conversations" });
    const items = list.getByRole("listitem");
    // The chat so far is stored, titled by its first message, and it is the open one.
    const item = items.filter({ has: page.getByRole("button", { name: "Add a /health route", exact: true }) });
    const titleButton = item.getByRole("button", { name: "Add a /health route", exact: true });
    await item.waitFor();
    assert.equal(await items.count(), 1, "one conversation");
    assert.match(await item.locator("small").innerText(), /^notes · (just now|\d+ minutes? ago) · 2 messages$/, "its app, when, and the question and reply");
    assert.equal(await titleButton.getAttribute("aria-current"), "true", "the open conversation is marked");
    await shot("06d-assistant-conversations");

    await panel.getByRole("button", { name: "New chat" }).click();
    assert.equal(await msgs.count(), 0, "a new chat is empty");
    assert.equal(await list.locator("[aria-current]").count(), 0, "no conversation is open");

    // Opened again: the question and the reply: its text, the tools it used and what it proposed, accepted above.
    await titleButton.click();
    await panel.locator(".msg.assistant", { hasText: "I proposed adding a /health route." }).waitFor();
    assert.equal(await msgs.count(), 2);
    assert.equal(await msgs.nth(0).innerText(), "Add a /health route");
    assert.match(await msgs.nth(1).innerText(), /Let me look at the app\.\s*I proposed adding a \/health route\./);
    await msgs.nth(1).locator(".tool", { hasText: "get_app →" }).waitFor();
    const past = msgs.nth(1).getByRole("group", { name: "Earlier proposal: Add a /health route" });
    await past.waitFor();
    assert.match(await past.innerText(), /Update app\s*notes[\s\S]*Files: app\.py[\s\S]*Accepted$/);
    assert.equal(await past.getByRole("button").count(), 0, "a decided proposal is not decided again");
    assert.equal(await titleButton.getAttribute("aria-current"), "true");

    // Gone on with: the model gets the earlier messages, and the list has the same conversation, longer.
    const before = dev.llm.requests.length;
    await panel.getByLabel("Message to the assistant").fill("What did I ask you for?");
    await panel.getByRole("button", { name: "Send" }).click();
    await panel.locator(".msg.assistant", { hasText: "You asked me for a /health route, and I proposed one." }).waitFor();
    const reqs = dev.llm.requests.slice(before);
    assert.equal(reqs.length, 1, "one call: the model answers in words");
    assert.deepEqual(reqs[0].problems, []);
    const sent = reqs[0].body.messages.filter((m) => m.role !== "system").map((m) => [m.role, JSON.stringify(m.content)]);
    assert.equal(sent.length, 3, `the earlier question and reply, then the new question: ${JSON.stringify(sent)}`);
    assert.deepEqual(sent.map((m) => m[0]), ["user", "assistant", "user"]);
    assert.match(sent[0][1], /Add a \/health route/);
    assert.match(sent[1][1], /I proposed adding a \/health route\./);
    assert.match(sent[2][1], /What did I ask you for\?/);
    await item.locator("small", { hasText: "4 messages" }).waitFor();
    assert.equal(await items.count(), 1, "the same conversation, not another");
    assert.equal(await msgs.count(), 4);

    // Deleted, after a confirmation: the list is empty and the chat, which was that conversation, too.
    await item.getByRole("button", { name: "Delete conversation: Add a /health route" }).click();
    await page.getByRole("dialog", { name: "Delete this conversation?" }).getByRole("button", { name: "Delete" }).click();
    await panel.getByText("No conversations yet").waitFor();
    assert.equal(await items.count(), 0, "no conversations left");
    assert.equal(await msgs.count(), 0, "the open conversation was deleted: the chat is cleared");
    await page.locator("#toast", { hasText: "Conversation deleted" }).waitFor();
  });

  await step(t, "a proposal left undecided is accepted when its conversation is opened again, after the app changed", async () => {
    const panel = page.locator("#panel-assistant");
    const msgs = panel.locator(".msg");
    await panel.getByLabel("Message to the assistant").fill("Add a /health route");
    await panel.getByRole("button", { name: "Send" }).click();
    await panel.getByRole("group", { name: "Proposal: Add a /health route" }).waitFor();
    await panel.locator(".msg.assistant", { hasText: "I proposed adding a /health route." }).waitFor();
    await panel.getByRole("button", { name: "Send" }).waitFor();

    // Left undecided; the app changes meanwhile (a saved edit at its end).
    await page.locator(".cm-content").click();
    await page.keyboard.press("Control+End");
    await page.keyboard.type("# edited meanwhile");
    await page.getByTestId("status").filter({ hasText: "Unsaved changes" }).waitFor();
    await page.keyboard.press("Control+s");
    await page.getByTestId("status").filter({ hasText: "Changes not deployed" }).waitFor();

    await panel.getByRole("button", { name: "New chat" }).click();
    const list = panel.getByRole("list", { name: "Past conversations" });
    const title = list.getByRole("button", { name: "Add a /health route", exact: true });
    await title.click();
    const card = msgs.nth(1).getByRole("group", { name: "Proposal: Add a /health route" });
    await card.getByText("proposed earlier, not decided yet").waitFor();
    await card.locator(".diff .add", { hasText: '+ @app.get("/health")' }).first().waitFor();
    await shot("06e-assistant-undecided");

    const recorded = page.waitForResponse((r) => r.url().endsWith("/gofastapi.v1.AssistantService/DecideProposal"));
    await card.getByRole("button", { name: "Accept" }).click();
    const changed = page.getByRole("dialog", { name: "notes changed since this was proposed" });
    assert.match(await changed.innerText(), /Accepting replaces app\.py with the proposal's version, and the changes made to it since are lost\./);
    await changed.getByRole("button", { name: "Replace" }).click();
    await card.getByText("Accepted").waitFor();
    await page.locator("#toast", { hasText: "Draft saved: review and deploy" }).waitFor();
    assert.equal((await recorded).status(), 200, "the decision is recorded");
    await page.waitForFunction(() => ![...document.querySelectorAll(".cm-line")].some((l) => l.textContent?.includes("# edited meanwhile")));

    // Opened once more: decided, with no buttons.
    await panel.getByRole("button", { name: "New chat" }).click();
    await title.click();
    const past = msgs.nth(1).getByRole("group", { name: "Earlier proposal: Add a /health route" });
    await past.getByText("Accepted").waitFor();
    assert.equal(await past.getByRole("button").count(), 0, "a decided proposal is not decided again");
    await list.getByRole("listitem").getByRole("button", { name: "Delete conversation: Add a /health route" }).click();
    await page.getByRole("dialog", { name: "Delete this conversation?" }).getByRole("button", { name: "Delete" }).click();
    await panel.getByText("No conversations yet").waitFor();
  });

  if (T.db) {
    await step(t, "add a note in the app", async () => {
      const p = await context.newPage();
      try {
        await p.goto(appURL);
        await p.getByPlaceholder("Write a note").fill("written by Chromium <b>escaped</b>");
        await p.getByRole("button", { name: "Add" }).click();
        await p.locator("#notes li", { hasText: "written by Chromium <b>escaped</b>" }).waitFor();
        assert.equal(await p.locator("#notes b").count(), 0, "the note's HTML is escaped");
        await shot("07-app-note", p);
      } finally {
        await p.close();
      }
    });

    await step(t, "the database page shows the notes collection and its document", async () => {
      await page.getByRole("link", { name: "Database" }).click();
      const row = page.locator('tr[data-collection="notes"]');
      await row.waitFor();
      assert.equal(await row.locator("td").nth(1).innerText(), "1", "one document");
      await row.getByRole("button", { name: "notes" }).click();
      await page.getByRole("list", { name: "Documents of notes" }).getByText("written by Chromium").waitFor();
      await shot("08-database");
      // Databases: create, rename, make default and back, delete.
      await page.getByLabel("New database name").fill("analytics");
      await page.getByRole("button", { name: "Create database" }).click();
      const analytics = page.locator('[data-database="analytics"]');
      await analytics.waitFor();
      await analytics.getByRole("button", { name: "Rename" }).click();
      await page.getByRole("dialog").getByLabel("New name").fill("stats");
      await page.getByRole("dialog").getByRole("button", { name: "Rename" }).click();
      const stats = page.locator('[data-database="stats"]');
      await stats.waitFor();
      await stats.getByRole("button", { name: "Make default" }).click();
      await stats.locator(".pill", { hasText: "default" }).waitFor();
      await page.locator('[data-database="default"]').getByRole("button", { name: "Make default" }).click();
      await page.locator('[data-database="default"] .pill', { hasText: "default" }).waitFor();
      await stats.getByRole("button", { name: "Delete" }).click();
      await page.getByRole("dialog").getByLabel("Type stats to confirm").fill("stats");
      await page.getByRole("dialog").getByRole("button", { name: "Delete database" }).click();
      await stats.waitFor({ state: "detached" });
      // The data viewer's credentials: shown once, at rotation.
      await page.getByRole("button", { name: "Rotate viewer credentials" }).click();
      const viewer = page.locator("dl.creds");
      await viewer.waitFor();
      assert.match(await viewer.locator("a").getAttribute("href"), /^http:\/\/mongo-alice\.localhost:\d+/);
      assert.ok((await viewer.locator("code.secret").innerText()).length >= 12, "a password is shown");
      await page.goBack();
      await page.locator(".cm-content").waitFor();
    });
  }

  await step(t, "change the code, deploy, roll back from history, then forward again", async () => {
    await page.locator(".cm-content").click();
    await page.keyboard.press("Control+End");
    await page.keyboard.insertText('\n\n@app.get("/greeting")\ndef greeting():\n    import os\n    return {"greeting": os.environ.get("GREETING", "unset")}\n');
    await page.keyboard.press("Control+Enter");
    await page.locator('.stage.done[data-stage="live"]').waitFor();
    assert.equal((await appText(appURL, "/greeting")).status, 200);

    await page.getByRole("tab", { name: "History" }).click();
    await page.locator(".version").nth(1).waitFor();
    assert.equal(await page.locator(".version").count(), 2);
    assert.match(await page.locator(".version").first().getAttribute("class"), /current/);
    await page.locator(".version").nth(1).getByRole("button", { name: "Preview" }).click();
    await page.getByRole("dialog").getByText(T.line).waitFor();
    assert.equal(await page.getByRole("dialog").getByText("/greeting").count(), 0, "the old version has no /greeting");
    await page.getByRole("dialog").getByRole("button", { name: "Close" }).click();
    await page.locator(".version").nth(1).getByRole("button", { name: "Roll back" }).click();
    await page.locator(".version.current").nth(0).and(page.locator(".version").nth(1)).waitFor();
    await shot("09-history-rolled-back");
    assert.equal((await appText(appURL, "/greeting")).status, 404, "after the rollback the old version serves");

    await page.locator(".version").first().getByRole("button", { name: "Roll back" }).click();
    await page.locator(".version").first().and(page.locator(".version.current")).waitFor();
    assert.equal((await appText(appURL, "/greeting")).status, 200, "rolled forward again");
  });

  await step(t, "a secret env var reaches the app", async () => {
    await page.getByRole("tab", { name: "Settings" }).click();
    await page.getByLabel("Variable name").fill("GREETING");
    await page.getByLabel("Value").fill("s3cret-from-the-editor");
    await page.getByLabel("Secret").check();
    await page.getByRole("button", { name: "Set", exact: true }).click();
    await page.locator('tr[data-env="GREETING"]').getByText("secret (set)").waitFor();
    if (T.db) {
      const choice = page.getByLabel("The app's PLATFORM_MONGO_URI opens");
      await choice.locator("option", { hasText: "The default database (default)" }).waitFor({ state: "attached" });
      assert.equal(await choice.inputValue(), "", "the app uses the default database");
    }
    assert.equal(await page.getByText("s3cret-from-the-editor").count(), 0, "the secret's value is never shown");
    await shot("10-settings-secret");
    const r = await appText(appURL, "/greeting");
    assert.match(r.text, /s3cret-from-the-editor/);
  });

  await step(t, "logs and events panels follow the app", async () => {
    await page.getByRole("tab", { name: "Events" }).click();
    await page.locator(".stream.events li.event.deployed").first().waitFor();
    await page.locator(".stream.events li.event.rolled_back").first().waitFor();
    await page.getByRole("tab", { name: "Metrics" }).click();
    await page.locator("#panel-metrics .health").waitFor();
    await page.getByRole("tab", { name: "Logs" }).click();
    await page.locator(".stream.logs li").first().waitFor();
    await shot("11-logs");
  });

  await step(t, "side preview shows the app", async () => {
    await page.getByRole("tab", { name: "Preview" }).click();
    const frame = page.frameLocator("iframe.preview");
    await frame.locator("body").getByText(T.page).first().waitFor();
    await shot("12-preview");
  });

  await step(t, "templates browser and account page", async () => {
    await page.getByRole("link", { name: "Templates" }).click();
    await page.locator('[data-template="notes"]').waitFor();
    await page.getByRole("tab", { name: "My templates" }).click();
    await page.getByText("You have no templates yet").waitFor();
    await shot("13-templates");
    await page.getByRole("link", { name: "Account" }).click();
    await page.locator('tr[data-current="true"]').waitFor();
    await shot("14-account");
  });

  await step(t, "the admin page lists the user", async () => {
    await page.getByRole("link", { name: "Admin" }).click();
    const row = page.locator('tr[data-user="alice"]');
    await row.waitFor();
    assert.match(await row.innerText(), /admin/);
    assert.match(await row.locator("td").nth(1).innerText(), /^1\b/, "alice has one app");
    await page.getByRole("list", { name: "Activity" }).getByText("signup").first().waitFor();
    await shot("15-admin");
  });

  await step(t, "admin: create a user, promote and demote, signups off and on, an import, delete the user", async () => {
    await page.getByLabel("Username").fill("bob");
    await page.getByLabel("Password").fill("bob's password");
    await page.getByRole("button", { name: "Create user" }).click();
    const bob = page.locator('tr[data-user="bob"]');
    await bob.waitFor();
    await bob.getByRole("button", { name: "Make admin" }).click();
    await bob.getByRole("button", { name: "Demote" }).waitFor();
    await bob.getByRole("button", { name: "Demote" }).click();
    await bob.getByRole("button", { name: "Make admin" }).waitFor();
    assert.ok(await page.locator('tr[data-user="alice"]').getByRole("button", { name: "Demote" }).isDisabled(), "nobody demotes themselves");
    const tier = page.getByLabel("Tier of bob");
    assert.equal(await tier.inputValue(), "free", "a new user is on the free tier");
    await tier.selectOption("pro");
    await page.getByText("bob is on the pro tier: 100 apps, 10 databases, 10 GB of storage, 60000 requests a minute").waitFor();
    await page.reload();
    await bob.waitFor();
    assert.equal(await page.getByLabel("Tier of bob").inputValue(), "pro", "the tier was saved");
    const signups = page.getByLabel(/Public signups/);
    assert.ok(await signups.isChecked());
    await signups.uncheck();
    await page.getByText("Only admins create users now").waitFor();
    await signups.check();
    await page.getByText("Anyone can sign up").waitFor();
    const importList = page.getByRole("region", { name: "Import allowlist" });
    const imports = importList.getByLabel("Allowed imports");
    await imports.fill((await imports.inputValue()) + " yaml");
    await importList.getByRole("button", { name: "Save imports" }).click();
    await importList.getByText("Customized.").waitFor();
    await importList.getByRole("button", { name: "Reset to defaults" }).click();
    await importList.getByText("The defaults are in force.").waitFor();
    await bob.getByRole("button", { name: "Delete" }).click();
    await page.getByRole("dialog").getByLabel("Type bob to confirm").fill("bob");
    await page.getByRole("dialog").getByRole("button", { name: "Delete user" }).click();
    await bob.waitFor({ state: "detached" });
  });

  await step(t, "admin: the dependency allowlist, edited, kept across a reload, reset; the note on the missing package index", async () => {
    const deps = page.getByRole("region", { name: "Dependency allowlist" });
    // The test platform runs without --package-index: apps cannot declare
    // dependencies, and the page says why.
    assert.equal(await deps.getByTestId("package-index").innerText(),
      "No package index is configured: apps cannot declare dependencies until the platform is started with --package-index.");
    await deps.getByText("The defaults are in force.").waitFor();
    const packages = deps.getByLabel("Allowed packages");
    const defaults = (await packages.inputValue()).split(/\s+/).filter(Boolean);
    assert.ok(!defaults.includes("cowsay"), `cowsay is not on the default allowlist: ${defaults.join(" ")}`);
    // A name that is no distribution name is refused, in words, and nothing changes.
    await packages.fill([...defaults, "bad/name"].join(" "));
    await deps.getByRole("button", { name: "Save packages" }).click();
    await deps.getByRole("alert").filter({ hasText: "bad/name" }).waitFor();
    await deps.getByText("The defaults are in force.").waitFor();
    await packages.fill([...defaults, "cowsay"].join(" "));
    await deps.getByRole("button", { name: "Save packages" }).click();
    await deps.getByText("Customized.").waitFor();
    assert.ok(await deps.getByRole("alert").isHidden(), "the error is gone after a good save");
    await page.getByText("Dependency allowlist saved; it applies to the next deploy").waitFor();
    assert.equal(await page.getByRole("region", { name: "Import allowlist" }).getByText("The defaults are in force.").count(), 1,
      "the import allowlist is not touched by the dependency allowlist");
    await shot("15b-admin-dependencies");
    await page.reload();
    await deps.getByText("Customized.").waitFor();
    const saved = (await deps.getByLabel("Allowed packages").inputValue()).split(/\s+/);
    assert.ok(saved.includes("cowsay"), `cowsay was saved: ${saved.join(" ")}`);
    for (const d of defaults) assert.ok(saved.includes(d), `${d} stays on the list: ${saved.join(" ")}`);
    await deps.getByRole("button", { name: "Reset to defaults" }).click();
    await deps.getByText("The defaults are in force.").waitFor();
    assert.deepEqual((await deps.getByLabel("Allowed packages").inputValue()).split(/\s+/).filter(Boolean), defaults, "the defaults are back");
    await page.reload();
    await deps.getByText("The defaults are in force.").waitFor();
    assert.ok(!(await deps.getByLabel("Allowed packages").inputValue()).split(/\s+/).includes("cowsay"), "the reset was saved");
  });

  await step(t, "save as template, clone, and delete with confirmation", async () => {
    await page.getByRole("link", { name: "Apps" }).click();
    await page.locator('[data-app="notes"] a.app-name').click();
    await page.getByRole("tab", { name: "Settings" }).click();
    await page.getByLabel("Template name").fill("my notes");
    await page.getByRole("button", { name: "Save as template" }).click();
    await page.getByText("Template “my notes” saved").waitFor();
    await page.getByLabel("Name of the copy").fill("notes-copy");
    await page.getByRole("button", { name: "Clone", exact: true }).click();
    await page.waitForURL(/\/apps\/notes-copy$/);
    await page.getByTestId("status").filter({ hasText: "Up to date" }).waitFor();
    await page.getByRole("tab", { name: "Settings" }).click();
    await page.getByRole("button", { name: "Delete app" }).click();
    const confirm = page.getByRole("dialog");
    assert.ok(await confirm.getByRole("button", { name: "Delete app" }).isDisabled(), "deleting waits for the name");
    await confirm.getByLabel("Type notes-copy to confirm").fill("notes-copy");
    await confirm.getByRole("button", { name: "Delete app" }).click();
    await page.getByRole("heading", { name: "Your apps" }).waitFor();
    assert.equal(await page.locator('[data-app="notes-copy"]').count(), 0);
    await page.getByRole("link", { name: "Templates" }).click();
    await page.getByRole("tab", { name: "My templates" }).click();
    await page.locator(".card", { hasText: "my notes" }).waitFor();
  });

  await step(t, "a multi-file app: tabs, add, rename and remove a file, a badge on the broken file's tab", async () => {
    await page.getByRole("link", { name: "Apps" }).click();
    await page.getByRole("link", { name: "New app" }).click();
    await page.getByLabel("Name", { exact: true }).fill("shop");
    await page.getByLabel("Notes (optional)").fill("prices in cents");
    await page.getByLabel("Multi-file FastAPI").check();
    await page.getByRole("button", { name: "Create app" }).click();
    await page.waitForURL(/\/apps\/shop$/);
    await page.locator(".cm-content").waitFor();
    const tabs = page.getByRole("tablist", { name: "Files" }).getByRole("tab");
    assert.deepEqual(await tabs.allInnerTexts(), ["app.py", "routes.py", "models.py", "services.py", "helpers.py"]);
    await page.getByRole("tab", { name: "Settings" }).click();
    assert.equal(await page.getByLabel("Notes", { exact: true }).inputValue(), "prices in cents", "the notes given at creation are the app's");
    await page.getByLabel("Custom domain", { exact: true }).fill("shop.example.test");
    await page.getByRole("button", { name: "Add domain" }).click();
    await page.getByRole("alert").filter({ hasText: "shop.example.test has no CNAME record: add a CNAME record for shop.example.test pointing at shop.localhost" }).waitFor();
    await page.getByRole("button", { name: "+ File" }).click();
    await page.getByRole("dialog").getByLabel("File name").fill("extra.py");
    await page.keyboard.press("Enter");
    await page.locator('.file-tab.active[data-file="extra.py"]').waitFor();
    await page.locator(".cm-content").click();
    await page.keyboard.insertText("def broken(:\n    pass\n");
    assert.equal(await page.locator(".cm-line").first().innerText(), "def broken(:", "Enter in the dialog stays out of the editor");
    await page.keyboard.press("Control+s");
    await page.locator('.file-tab[data-file="extra.py"] .badge.err').waitFor();
    assert.equal(await page.locator('.file-tab[data-file="app.py"] .badge.err').count(), 0, "only the broken file has a badge");
    await page.getByRole("button", { name: "Rename extra.py" }).click();
    await page.getByRole("dialog").getByLabel("File name").fill("more.py");
    await page.getByRole("dialog").getByRole("button", { name: "Rename" }).click();
    await page.locator('.file-tab[data-file="more.py"] .badge.err').waitFor();
    await shot("16-multi-file");
    await page.getByRole("button", { name: "Remove more.py" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Remove" }).click();
    await page.locator('.file-tab[data-file="more.py"]').waitFor({ state: "detached" });
    await page.keyboard.press("Control+s");
    await page.locator(".problems li").waitFor({ state: "detached" });
    assert.equal(await tabs.count(), 5);
    assert.equal(await page.getByTestId("status").innerText(), "Not deployed");
  });

  await step(t, "a requirements.txt naming a package off the allowlist: deploy stops with the problem at its line", async () => {
    // Still the shop app. The platform checks requirements.txt against the
    // dependency allowlist before anything else, so this needs no index.
    await page.getByRole("button", { name: "+ File" }).click();
    const add = page.getByRole("dialog");
    await add.getByText("declares extra pure-Python packages").waitFor();
    await add.getByLabel("File name").fill("requirements.txt");
    await add.getByRole("button", { name: "Add" }).click();
    await page.locator('.file-tab.active[data-file="requirements.txt"]').waitFor();
    await page.locator(".cm-content").click();
    await page.keyboard.insertText("# extra packages\ncowsay==6.1\n");
    await page.keyboard.press("Control+Enter");
    const problem = page.locator(".problems li", { hasText: "requirements.txt" });
    await problem.waitFor();
    assert.match(await problem.textContent(), /^requirements\.txt:2(:\d+)? .*\bcowsay\b/, "the problem names the file, the line and the package");
    assert.match(await page.locator('.stage[data-stage="validate"]').getAttribute("class"), /failed/, "the deploy stopped at validation");
    assert.match(await page.locator(".deploy-result").innerText(), /^Deploy stopped at validate/);
    assert.equal(await page.locator('.file-tab[data-file="requirements.txt"] .badge.err').innerText(), "1");
    await page.locator(".cm-lintRange-error").first().waitFor();
    assert.equal(await page.locator(".cm-line", { has: page.locator(".cm-lintRange-error") }).first().innerText(), "cowsay==6.1",
      "the package's line is marked");
    assert.equal(await page.locator(".deploy-deps").isHidden(), true, "no dependencies were installed");
    await shot("16b-requirements-problem");
    await page.getByRole("button", { name: "Remove requirements.txt" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Remove" }).click();
    await page.locator('.file-tab[data-file="requirements.txt"]').waitFor({ state: "detached" });
    await page.keyboard.press("Control+s");
    await page.locator(".problems li").waitFor({ state: "detached" });
    await page.getByTestId("status").filter({ hasText: "Not deployed" }).waitFor();
  });

  await step(t, "the dashboard shows the app live, with its requests and health", async () => {
    await page.getByRole("link", { name: "Apps" }).click();
    const card = page.locator('[data-app="notes"]');
    await card.locator(".pill", { hasText: "live" }).waitFor();
    // The gateway flushes figures each second (--metrics-flush 1s): load
    // the dashboard again until they have arrived.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const figures = await card.locator(".figures").innerText();
      const m = /^(\d+) requests · (\d+) errors \(24 h\)$/.exec(figures);
      if (m && Number(m[1]) >= 5) break;
      assert.ok(Date.now() < deadline, `the dashboard shows no requests for the app: ${JSON.stringify(figures)}`);
      await new Promise((r) => setTimeout(r, 250));
      await page.reload();
      await card.locator(".pill", { hasText: "live" }).waitFor();
    }
    assert.match(await card.locator(".dot").getAttribute("class"), /dot (green|yellow)/);
    assert.equal(await card.getByRole("link", { name: "/docs" }).getAttribute("href"), appURL + "/docs");
    await shot("17-dashboard");
  });

  await step(t, "the dashboard and the editor at phone width have no sideways scrolling", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const wider = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok((await wider()) <= 0, "the dashboard fits a phone screen");
    await shot("19-dashboard-phone");
    await page.locator('[data-app="notes"] a.app-name').click();
    await page.locator(".cm-content").waitFor();
    const overflow = await wider();
    assert.ok(overflow <= 0, `the editor is ${overflow}px wider than a phone screen`);
    await shot("18-editor-phone");
  });

  await step(t, "a fresh load of the editor (measured, not asserted)", async () => {
    const t0 = Date.now();
    await page.setViewportSize({ width: 1366, height: 900 });
    await page.goto(`${dev.url}/apps/notes`);
    await page.locator(".cm-content").waitFor();
    await page.getByTestId("status").filter({ hasText: "Up to date" }).waitFor();
    const ms = Date.now() - t0;
    const nav = await page.evaluate(() => {
      const n = performance.getEntriesByType("navigation")[0];
      const bytes = performance.getEntriesByType("resource").reduce((sum, r) => sum + r.transferSize, n.transferSize);
      return { dcl: Math.round(n.domContentLoadedEventEnd), bytes };
    });
    t.diagnostic(`editor load: ${ms} ms to editable code and status (DOMContentLoaded ${nav.dcl} ms, ${nav.bytes} bytes transferred)`);
  });

  await step(t, "account: change the password, log out, log in with the new one", async () => {
    await page.getByRole("link", { name: "Account" }).click();
    await page.getByLabel("Current password").fill("correct horse battery");
    await page.getByLabel("New password").fill("a new horse battery");
    await page.getByRole("button", { name: "Change password" }).click();
    await page.getByText(/Password changed/).waitFor();
    await page.getByRole("button", { name: "Log out", exact: true }).click();
    await page.waitForURL(/\/login$/);
    await page.getByLabel("Username").fill("alice");
    await page.getByLabel("Password").fill("correct horse battery");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("alert").filter({ hasText: "Wrong username or password." }).waitFor();
    await page.getByLabel("Password").fill("a new horse battery");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: "Your apps" }).waitFor();
  });

  await t.test("no errors in the browser console", () => {
    assert.deepEqual(consoleErrors, []);
  });
});
