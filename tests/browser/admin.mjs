// Uses a rendered Django project's admin as a person does, in Debian's chromium (headless): logs
// in, creates an item, edits it, and records every static file the pages loaded.
//
//   npm ci --prefix tests/browser && node tests/browser/admin.mjs BASE_URL USERNAME PASSWORD
//
// Prints one JSON object: the items' names as the change list shows them after each step, the
// static files with their status and content type, and console errors with the URL they concern.
// Exits 1 when a step fails.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium } from "playwright-core";

const [base, username, password] = process.argv.slice(2);
if (!password) {
  console.error("usage: node tests/browser/admin.mjs BASE_URL USERNAME PASSWORD");
  process.exit(2);
}

const profile = await mkdtemp(join(tmpdir(), "admin-browser-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
const report = { steps: [], static: [], consoleErrors: [] };
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15000);
  page.on("console", (message) => {
    if (message.type() === "error") {
      report.consoleErrors.push({ text: message.text(), url: message.location().url });
    }
  });
  page.on("response", (response) => {
    const url = new URL(response.url());
    if (url.pathname.startsWith("/static/")) {
      report.static.push({
        path: url.pathname,
        status: response.status(),
        type: response.headers()["content-type"] ?? "",
      });
    }
  });
  const changeList = async (step) => {
    await page.goto(`${base}/admin/items/item/`);
    const names = await page.locator("#result_list tbody td.field-name").allTextContents();
    report.steps.push({ step, names });
  };

  await page.goto(`${base}/admin/`);
  await page.fill("#id_username", username);
  await page.fill("#id_password", password);
  await Promise.all([page.waitForURL(`${base}/admin/`), page.click("input[type=submit]")]);
  report.steps.push({ step: "logged in", title: await page.title() });
  // The admin's own stylesheet applied: its header bar is not the browser's default.
  report.headerBackground = await page
    .locator("#header")
    .evaluate((element) => getComputedStyle(element).backgroundColor);

  await page.goto(`${base}/admin/items/item/add/`);
  await page.fill("#id_name", "Created in a browser");
  await page.fill("#id_description", "through the admin");
  await Promise.all([page.waitForURL(`${base}/admin/items/item/`), page.click("input[name=_save]")]);
  await changeList("created");

  await page.click("#result_list tbody th a");
  await page.fill("#id_name", "Edited in a browser");
  await Promise.all([page.waitForURL(`${base}/admin/items/item/`), page.click("input[name=_save]")]);
  await changeList("edited");
} catch (error) {
  report.error = String(error);
} finally {
  await context.close();
  await rm(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(report, null, 2));
process.exit(report.error ? 1 : 0);
