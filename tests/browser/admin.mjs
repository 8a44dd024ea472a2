// Drives the gateway's admin console in headless Chromium (Debian's, never a downloaded one), as a
// lab admin would: sign in, enroll a tablet (its code and QR code appear), revoke it (the list says
// so), see the status and a chart filled, and save a full-page screenshot.
//
//   node tests/browser/admin.mjs <gateway URL> <admin login> <admin password> <screenshot.png> <patient id>
//
// Prints one JSON line on success: {"ok": true, "device_id": "…", "code": "…"}. Exits non-zero on
// any failure (a failure screenshot is saved beside the requested one). Run by tests/tests/it/console.rs.

import { chromium } from "playwright-core";

const [url, login, password, screenshot, patientId] = process.argv.slice(2);
if (!url || !login || !password || !screenshot || !patientId) {
  console.error("usage: node admin.mjs <gateway URL> <admin login> <admin password> <screenshot.png> <patient id>");
  process.exit(2);
}
const executablePath = process.env.LABEDGE_CHROMIUM || "/usr/bin/chromium";
const STEP_MS = 20_000;

// Never hang a test run: the whole script has two minutes.
const watchdog = setTimeout(() => {
  console.error("admin.mjs: gave up after 120 s");
  process.exit(3);
}, 120_000);

function step(name) {
  console.error(`admin.mjs: ${name}`);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
// The test CA is not in the system store: the page's certificate is not checked here (the Rust tests
// check the gateway's TLS).
const context = await browser.newContext({
  ignoreHTTPSErrors: true,
  viewport: { width: 1440, height: 1000 },
  locale: "en-GB",
  timezoneId: "Europe/Paris",
});
const page = await context.newPage();
page.setDefaultTimeout(STEP_MS);
const problems = [];
page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
page.on("console", (message) => {
  // A 401 before signing in is how the page learns there is no session; anything else is a fault
  // (a CSP violation, a script error).
  if (message.type() === "error" && !/status of 401/.test(message.text())) problems.push(`console: ${message.text()}`);
});

let exitCode = 0;
try {
  step("open the console");
  await page.goto(`${url}/admin`);
  await page.locator("#login-view").waitFor({ state: "visible" });

  step("a wrong password is refused");
  await page.fill("#login", login);
  await page.fill("#password", "not the password");
  await page.click("#login-submit");
  await page.locator("#login-error").waitFor({ state: "visible" });

  step("sign in");
  await page.fill("#password", password);
  await page.click("#login-submit");
  await page.locator("#console-view").waitFor({ state: "visible" });

  step("the status shows");
  await page.waitForFunction(() => {
    const pending = document.getElementById("backlog-pending").textContent;
    const lab = document.getElementById("lab-name").textContent;
    return /^\d/.test(pending) && lab.length > 0 && document.getElementById("feed-pull").textContent !== "—";
  });

  step("enroll a tablet: code and QR code");
  await page.click("#enroll");
  await page.locator("#enrollment").waitFor({ state: "visible" });
  const code = (await page.textContent("#enroll-code")).trim();
  if (!/^[A-HJ-NP-Z2-9]{8}$/.test(code)) throw new Error(`unexpected enrollment code ${JSON.stringify(code)}`);
  await page.waitForFunction(() => {
    const qr = document.getElementById("enroll-qr");
    return qr.complete && qr.naturalWidth >= 100 && qr.src.startsWith("data:image/svg+xml");
  });

  step("the tablet uses the code");
  const label = "Ward B — browser test";
  const enrolled = await context.request.post(`${url}/v1/devices/enroll`, {
    data: { code, label, app_version: "2.4.1" },
  });
  if (enrolled.status() !== 201) throw new Error(`enrollment answered ${enrolled.status()}: ${await enrolled.text()}`);
  const deviceId = (await enrolled.json()).device_id;
  const row = page.locator(`tr[data-device-id="${deviceId}"]`);
  await row.waitFor({ state: "visible" });
  if (!(await row.textContent()).includes(label)) throw new Error("the tablet's label is not in its row");

  step("wrong PINs lock a login on that tablet; the admin lifts the lockout");
  const secret = (await enrolled.json()).device_secret;
  for (let i = 0; i < 5; i++) {
    const failed = await context.request.post(`${url}/v1/auth/login`, {
      data: { device_id: deviceId, device_secret: secret, login: "x.nobody", pin: "0000" },
    });
    if (failed.status() !== 401) throw new Error(`a wrong PIN answered ${failed.status()}`);
  }
  const lockout = page.locator("#lockouts tr[data-lockout-id]", { hasText: "x.nobody" });
  await lockout.waitFor({ state: "visible", timeout: 30000 });
  if (!(await lockout.textContent()).includes("Locked")) throw new Error("the lockout row does not say locked");
  await lockout.locator('button[data-action="unlock"]').click();
  await page.locator("#confirm").waitFor({ state: "visible" });
  await page.click("#confirm-ok");
  await lockout.waitFor({ state: "detached" });

  step("revoke it, with a confirmation");
  await row.locator('button[data-action="revoke"]').click();
  await page.locator("#confirm").waitFor({ state: "visible" });
  await page.click("#confirm-ok");
  await page.waitForSelector(`tr[data-device-id="${deviceId}"][data-status="revoked"]`);
  if (!(await row.textContent()).includes("Revoked")) throw new Error("the row does not say revoked");

  step("a chart has data");
  await page.waitForFunction(() => {
    const svg = document.querySelector("#chart-backlog svg");
    return svg && Number(svg.dataset.points) >= 1 && svg.querySelector("path.series-line, circle");
  });

  step("a patient's access history");
  await page.fill("#patient-id", "not an id");
  await page.click("#access-form button[type=submit]");
  await page.locator("#access-error").waitFor({ state: "visible" });
  // A patient the test's tablet read before the browser started: the history lists those reads.
  await page.fill("#patient-id", patientId);
  await page.click("#access-form button[type=submit]");
  await page.locator("#access-table").waitFor({ state: "visible" });
  await page.waitForFunction(() => document.querySelectorAll("#access-table tbody tr:not(.empty)").length >= 1);

  step("the request chart has points");
  await page.waitForFunction(() => {
    const svg = document.querySelector("#chart-requests svg");
    return svg && Number(svg.dataset.points) >= 2;
  });

  if (problems.length) throw new Error(`the page reported problems:\n${problems.join("\n")}`);

  step("screenshot");
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ ok: true, device_id: deviceId, code }));
} catch (error) {
  exitCode = 1;
  console.error(`admin.mjs: FAILED: ${error.stack || error}`);
  for (const problem of problems) console.error(problem);
  try {
    await page.screenshot({ path: screenshot.replace(/\.png$/, "") + ".failure.png", fullPage: true });
  } catch (_) {
    // Nothing more to show.
  }
} finally {
  await browser.close();
  clearTimeout(watchdog);
}
process.exit(exitCode);
