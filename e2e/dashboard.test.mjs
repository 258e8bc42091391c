// Browser tests of the sealflow dashboard: playwright-core driving Debian's Chromium against a
// real server. Run by crates/sealflow/tests/browser.rs, which starts the server, creates the
// users and passes: SEALFLOW_BASE, ADMIN_EMAIL, READONLY_EMAIL, PASSWORD, SCREENSHOT_DIR.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.SEALFLOW_BASE;
const PASSWORD = process.env.PASSWORD;
const SHOTS = process.env.SCREENSHOT_DIR || fs.mkdtempSync(path.join(os.tmpdir(), "sealflow-shots-"));
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const TIMEOUT = 15_000;
const random = () => Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);

/** A fresh browser profile; every response body it receives is kept for the secrecy check. */
async function browser(name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sealflow-${name}-`));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true, args: ARGS, viewport: { width: 1280, height: 860 }, timeout: 30_000,
  });
  context.setDefaultTimeout(TIMEOUT);
  const bodies = [];
  context.on("response", async (res) => {
    try { bodies.push({ url: res.url(), body: await res.body() }); } catch { /* redirects have none */ }
  });
  const page = context.pages()[0] || (await context.newPage());
  return { context, page, bodies, close: () => context.close() };
}

async function signIn(page, email) {
  await page.goto(BASE + "/");
  assert.match(page.url(), /\/login$/, "/ leads to sign-in without a session");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Runs" }).waitFor();
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** A local receiver for the chat-notify template's webhook. */
function receiver() {
  const hits = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => { hits.push({ url: req.url, body }); res.writeHead(200, { "content-type": "application/json" }); res.end('{"ok":true}'); });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, hits, port: server.address().port })));
}

test("the dashboard in a real browser", { timeout: 120_000 }, async (t) => {
  const admin = await browser("admin");
  const hook = await receiver();
  const { page } = admin;
  const value = `sv-${random()}-end`;
  try {
    await t.test("signs in with the labelled form", async () => {
      await page.goto(BASE + "/login");
      await shot(page, "sign-in");
      await signIn(page, process.env.ADMIN_EMAIL);
      assert.ok(await page.getByText(process.env.ADMIN_EMAIL).isVisible());
    });

    await t.test("creates a secret and sees its name, never its value", async () => {
      await page.getByRole("link", { name: "Secrets" }).click();
      await page.getByLabel("Name", { exact: true }).fill("CRM_API_KEY");
      const field = page.getByLabel("Value");
      assert.equal(await field.getAttribute("type"), "password");
      await field.fill(value);
      await page.getByLabel(/Allowed hosts/).fill("api.crm.example");
      await page.getByRole("button", { name: "Save secret" }).click();
      await page.getByRole("status").filter({ hasText: "Secret saved" }).waitFor();
      assert.ok(await page.locator("code.secret-name", { hasText: "CRM_API_KEY" }).isVisible());
      // The chat template's webhook URL is a secret too; it points at the local receiver.
      await page.getByLabel("Name", { exact: true }).fill("SLACK_WEBHOOK_URL");
      await page.getByLabel("Value").fill(`http://127.0.0.1:${hook.port}/chat`);
      await page.getByRole("button", { name: "Save secret" }).click();
      await page.locator("code.secret-name", { hasText: "SLACK_WEBHOOK_URL" }).waitFor();
      assert.ok(!(await page.content()).includes(value));
    });

    await t.test("creates a workflow from a template, runs it and watches it complete", async () => {
      await page.getByRole("link", { name: "Workflows" }).click();
      await page.getByLabel("Start from").selectOption({ label: "Template: Notify a chat channel" });
      await page.getByRole("button", { name: "Create workflow" }).click();
      await page.getByRole("heading", { name: /Notify a chat channel/ }).waitFor();
      await shot(page, "workflow-editor");
      await page.getByLabel(/^Input/).fill('{"message": "hello from the browser"}');
      await page.getByRole("button", { name: "Run", exact: true }).click();
      await page.waitForURL(/\/runs\/run_/);
      // The page updates itself until the run ends; no reload here.
      await page.locator("#run-status", { hasText: "completed" }).waitFor({ timeout: 20_000 });
      assert.ok(await page.locator(".step", { hasText: "notify" }).getByText("completed").isVisible());
      assert.equal(hook.hits.length, 1);
      assert.match(hook.hits[0].body, /hello from the browser/);
      await shot(page, "run");
      await page.getByRole("link", { name: "Workflows" }).click();
      await shot(page, "workflows");
      await page.getByRole("link", { name: "Secrets" }).click();
      assert.ok(await page.getByRole("link", { name: "Notify a chat channel" }).isVisible(), "used-by column");
      await shot(page, "secrets");
      await page.getByRole("link", { name: "Runs" }).click();
      await page.getByRole("cell", { name: /completed/ }).first().waitFor();
      await shot(page, "runs");
      await page.setViewportSize({ width: 360, height: 780 });
      await shot(page, "runs-360px");
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
      assert.equal(overflow, false, "the runs page fits 360 px");
      await page.setViewportSize({ width: 1280, height: 860 });
    });

    await t.test("creates an API key, shown once, and revokes it", async () => {
      await page.getByRole("link", { name: "API keys" }).click();
      await page.getByLabel("Key name").fill("ci-deploy");
      await page.getByRole("button", { name: "Create key" }).click();
      const key = await page.getByLabel("New API key").inputValue();
      assert.match(key, /^sf_live_[A-Za-z0-9]{40}$/);
      await shot(page, "keys");
      await page.getByRole("button", { name: "Revoke ci-deploy" }).click();
      await page.getByRole("status").filter({ hasText: "API key revoked" }).waitFor();
      assert.ok(!(await page.content()).includes(key), "the key is not shown again");
      assert.ok(await page.getByRole("row", { name: /ci-deploy/ }).getByText("revoked").isVisible());
      const res = await fetch(BASE + "/api/workflows/secrets", { headers: { authorization: `Bearer ${key}` } });
      assert.equal(res.status, 401, "a revoked key no longer works");
    });

    await t.test("a post without the CSRF token is refused", async () => {
      const status = await page.evaluate(async () => {
        const res = await fetch("/secrets", { method: "POST", body: new URLSearchParams({ name: "NO_CSRF", value: "v-123456" }) });
        return res.status;
      });
      assert.equal(status, 403);
      await page.getByRole("link", { name: "Secrets" }).click();
      assert.equal(await page.getByText("NO_CSRF").count(), 0);
    });

    await t.test("no page source or response the browser received contains the secret value", async () => {
      const b64 = Buffer.from(value).toString("base64");
      assert.ok(admin.bodies.length > 10, `saw ${admin.bodies.length} responses`);
      for (const { url, body } of admin.bodies) {
        const text = body.toString("latin1");
        assert.ok(!text.includes(value) && !text.includes(b64) && !text.includes(encodeURIComponent(value)), `value leaked in ${url}`);
      }
    });
  } finally {
    await admin.close();
  }

  const ro = await browser("readonly");
  try {
    await t.test("a readonly user sees no write controls, and a forged post is refused", async () => {
      await signIn(ro.page, process.env.READONLY_EMAIL);
      for (const link of ["Secrets", "Workflows", "API keys", "Runs"]) {
        await ro.page.getByRole("link", { name: link, exact: true }).click();
        for (const control of ["Save secret", "Create workflow", "Create key", "Cancel run"]) {
          assert.equal(await ro.page.getByRole("button", { name: control }).count(), 0, `${control} on ${link}`);
        }
      }
      await ro.page.getByRole("link", { name: "Workflows" }).click();
      await ro.page.getByRole("link", { name: "Notify a chat channel" }).click();
      assert.equal(await ro.page.getByRole("button", { name: "Run", exact: true }).count(), 0);
      assert.equal(await ro.page.getByRole("button", { name: /Activate|Pause|Save definition/ }).count(), 0);
      await ro.page.getByRole("link", { name: "Secrets" }).click();
      assert.equal(await ro.page.getByRole("link", { name: /^Delete/ }).count(), 0);
      const csrf = await ro.page.locator('input[name="csrf"]').first().inputValue();
      const status = await ro.page.evaluate(async (csrf) => {
        const res = await fetch("/secrets", { method: "POST", body: new URLSearchParams({ csrf, name: "FORGED", value: "v-123456" }) });
        return res.status;
      }, csrf);
      assert.equal(status, 403, "the server refuses a readonly write whatever the page shows");
      await ro.page.reload();
      assert.equal(await ro.page.getByText("FORGED").count(), 0);
    });
  } finally {
    await ro.close();
    hook.server.close();
  }
});
