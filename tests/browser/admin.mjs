// Drives the gateway's admin console in headless Chromium (Debian's, never a downloaded one), as a
// lab admin would: sign in, enroll a tablet (its code and QR code appear), revoke it (the list says
// so), see the status and a chart filled, and save a full-page screenshot. All of it in French, the
// console's default, in a browser set to English and to another time zone than the lab's (the page
// shows the lab's); then in English through the language switch, remembered across a reload; then
// back in French for the screenshot.
//
//   node tests/browser/admin.mjs <gateway URL> <admin login> <admin password> <screenshot.png> <patient id> <nurse login>
//
// Prints one JSON line on success: {"ok": true, "device_id": "…", "code": "…", "screenshot_lang": "fr",
// "seen": {"fr": {…}, "en": {…}}}, `seen` holding texts read off the page in each language. Exits non-zero on
// any failure (a failure screenshot is saved beside the requested one). Run by tests/tests/it/console.rs.

import { chromium } from "playwright-core";

const [url, login, password, screenshot, patientId, nurseLogin] = process.argv.slice(2);
if (!url || !login || !password || !screenshot || !patientId || !nurseLogin) {
  console.error("usage: node admin.mjs <gateway URL> <admin login> <admin password> <screenshot.png> <patient id> <nurse login>");
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
// The lab's time zone (the gateway's default `timezone`), and the browser's, on purpose another one.
const LAB_ZONE = "Europe/Paris";
const BROWSER_ZONE = "America/New_York";
// The test CA is not in the system store: the page's certificate is not checked here (the Rust tests
// check the gateway's TLS). An English browser: the console is in French all the same.
const context = await browser.newContext({
  ignoreHTTPSErrors: true,
  viewport: { width: 1440, height: 1000 },
  locale: "en-GB",
  timezoneId: BROWSER_ZONE,
});
const page = await context.newPage();
page.setDefaultTimeout(STEP_MS);
const problems = [];
page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
// The 404 the test provokes on purpose (below), while it does.
let expecting404 = false;
page.on("console", (message) => {
  // A 401 before signing in is how the page learns there is no session; anything else is a fault
  // (a CSP violation, a script error).
  const text = message.text();
  if (message.type() === "error" && !/status of 401/.test(text) && !(expecting404 && /status of 404/.test(text))) {
    problems.push(`console: ${text}`);
  }
});

// The language each call of the page to the gateway asked its answers (and problems) in.
const asked = [];
page.on("request", (request) => {
  if (request.url().includes("/admin/v1/")) asked.push(request.headers()["accept-language"]);
});

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function text(selector) {
  return ((await page.textContent(selector)) || "").trim();
}

// Waits until `selector`'s text is `expected` (a string, or a RegExp it matches).
async function textIs(selector, expected) {
  try {
    await page.waitForFunction(
      ([sel, source, flags]) => {
        const node = document.querySelector(sel);
        const value = node ? node.textContent.trim() : "";
        return flags === null ? value === source : new RegExp(source, flags).test(value);
      },
      expected instanceof RegExp ? [selector, expected.source, expected.flags] : [selector, expected, null],
      { timeout: 10_000 },
    );
  } catch (_) {
    throw new Error(`${selector} says ${JSON.stringify(await text(selector))}, not ${expected}`);
  }
}

// The languages asked since the last call, then forgets them.
function languagesAsked() {
  const seen = new Set(asked);
  asked.length = 0;
  return [...seen];
}

// The page's clock now (HH:MM) in `zone`, and a minute earlier, as Intl writes them in `locale`.
async function clocksIn(zone, locale) {
  return page.evaluate(([zone, locale]) => {
    const f = new Intl.DateTimeFormat(locale, { timeZone: zone, hour: "2-digit", minute: "2-digit" });
    const now = Date.now();
    return [f.format(now), f.format(now - 60_000)];
  }, [zone, locale]);
}

// Texts of the page read in each language, for the Rust test to check too.
async function seen() {
  return {
    lang: await page.getAttribute("html", "lang"),
    logout: await text("#logout"),
    tablets: await text("#tablets-title"),
    staff: await text("#staff-title"),
    mode: await text("#mode-pill"),
    revoked: await text(`tr[data-status="revoked"] .badge`),
    zone: await text("#timezone-note"),
  };
}

let exitCode = 0;
try {
  step("open the console: in French, whatever the browser's language");
  await page.goto(`${url}/admin`);
  await page.locator("#login-view").waitFor({ state: "visible" });
  check((await page.getAttribute("html", "lang")) === "fr", "the page is not in French");
  await textIs("#login-submit", "Se connecter");
  await textIs("label[for=password]", "Mot de passe");
  check((await page.getAttribute("#login-view button[data-lang=fr]", "aria-pressed")) === "true", "FR is not pressed");

  step("a wrong password is refused, in French");
  await page.fill("#login", login);
  await page.fill("#password", "not the password");
  await page.click("#login-submit");
  await page.locator("#login-error").waitFor({ state: "visible" });
  await textIs("#login-error", "Identifiant ou mot de passe incorrect.");

  step("sign in");
  await page.fill("#password", password);
  await page.click("#login-submit");
  await page.locator("#console-view").waitFor({ state: "visible" });
  await textIs("#logout", "Se déconnecter");
  await textIs("#tablets-title", "Tablettes");
  await textIs("#devices-table thead th:nth-child(3)", "Dernière activité");

  step("the status shows, in French, times in the lab's zone");
  await page.waitForFunction(() => {
    const pending = document.getElementById("backlog-pending").textContent;
    const lab = document.getElementById("lab-name").textContent;
    return /^\d/.test(pending) && lab.length > 0 && document.getElementById("feed-pull").textContent !== "—";
  });
  await textIs("#mode-pill", /^(En ligne|Secours|Hors ligne)$/);
  await textIs("#timezone-note", `Heures dans le fuseau du laboratoire (${LAB_ZONE}).`);
  await textIs("#kpi-storage .kpi-label", "Autonomie du disque");
  await textIs("#storage-autonomy", /^(à mesurer \(une heure\)|\d+ jours? d'écritures|sans limite au rythme actuel|—)$/);
  await textIs("#storage-sub", /^base [\d,\s\u202f]+ (o|ko|Mo|Go|To)( · .+)?$/);
  await textIs("#refreshed", /^Mis à jour à \d\d:\d\d:\d\d$/);
  const [labNow, labBefore] = await clocksIn(LAB_ZONE, "fr-FR");
  const [browserNow] = await clocksIn(BROWSER_ZONE, "fr-FR");
  check(labNow !== browserNow, "the lab's and the browser's zones tell the same time");
  const refreshed = await text("#refreshed");
  check(refreshed.includes(labNow) || refreshed.includes(labBefore), `"${refreshed}" is not the lab's time (${labNow})`);
  check(languagesAsked().every((lang) => lang === "fr"), "the page asked the gateway for another language than French");

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
  check((await lockout.textContent()).includes("Verrouillé"), "the lockout row does not say verrouillé");

  step("the gateway's refusal shows in French: an unlock of a lockout that is no more");
  // The page's own request, sent to the id of no lockout: the real gateway's problem, read by the page.
  const routeGone = (route) => {
    const gone = route.request().url().replace(/lockouts\/[^/]+\/unlock/, `lockouts/${crypto.randomUUID()}/unlock`);
    return route.continue({ url: gone });
  };
  await page.route("**/admin/v1/lockouts/*/unlock", routeGone);
  expecting404 = true;
  await lockout.locator('button[data-action="unlock"]').click();
  await page.locator("#confirm").waitFor({ state: "visible" });
  await textIs("#confirm-ok", "Déverrouiller");
  await page.click("#confirm-ok");
  await page.locator(".toast-error", { hasText: "Non déverrouillé : Introuvable" }).waitFor({ state: "visible" });
  await page.unroute("**/admin/v1/lockouts/*/unlock", routeGone);
  expecting404 = false;
  await lockout.locator('button[data-action="unlock"]').click();
  await page.locator("#confirm").waitFor({ state: "visible" });
  await page.click("#confirm-ok");
  await lockout.waitFor({ state: "detached" });

  step("the nurse forgot her PIN: a one-time code in the console, a new PIN on the tablet");
  const nurseRow = page.locator(`#staff tr[data-staff-id]`, { hasText: nurseLogin });
  await nurseRow.waitFor({ state: "visible" });
  check((await nurseRow.textContent()).includes("infirmier·ère"), "the nurse's role is not in French");
  await nurseRow.locator('button[data-action="pin-reset"]').click();
  await page.locator("#confirm").waitFor({ state: "visible" });
  await textIs("#confirm-ok", "Créer le code");
  await page.click("#confirm-ok");
  await page.locator("#pin-reset").waitFor({ state: "visible" });
  const resetCode = (await text("#pin-reset-code")).trim();
  check(/^[A-HJ-NP-Z2-9]{8}$/.test(resetCode), `unexpected reset code ${JSON.stringify(resetCode)}`);
  await textIs("#pin-reset-expiry", /^Expire dans \d+:\d\d \(à \d\d:\d\d\)$/);
  const resetAnswer = await context.request.post(`${url}/v1/auth/pin/reset`, {
    data: { device_id: deviceId, device_secret: secret, login: nurseLogin, reset_code: resetCode, new_pin: "97531" },
  });
  if (resetAnswer.status() !== 204) throw new Error(`the PIN reset answered ${resetAnswer.status()}: ${await resetAnswer.text()}`);
  const newLogin = await context.request.post(`${url}/v1/auth/login`, {
    data: { device_id: deviceId, device_secret: secret, login: nurseLogin, pin: "97531" },
  });
  if (newLogin.status() !== 200) throw new Error(`the new PIN answered ${newLogin.status()}`);
  await page.click("#pin-reset-close");
  check(await page.locator("#pin-reset").isHidden(), "the code stays on the page");

  step("deactivate the nurse, then reactivate her");
  await nurseRow.locator('button[data-action="deactivate"]').click();
  await page.locator("#confirm").waitFor({ state: "visible" });
  await page.click("#confirm-ok");
  await page.waitForSelector(`#staff tr[data-active="false"]`);
  check((await page.locator(`#staff tr[data-active="false"]`).textContent()).includes("Désactivé"), "not désactivé");
  const refused = await context.request.post(`${url}/v1/auth/login`, {
    data: { device_id: deviceId, device_secret: secret, login: nurseLogin, pin: "97531" },
  });
  if (refused.status() !== 401) throw new Error(`a deactivated nurse's login answered ${refused.status()}`);
  await page.locator(`#staff tr[data-active="false"] button[data-action="reactivate"]`).click();
  await page.locator("#confirm").waitFor({ state: "visible" });
  await page.click("#confirm-ok");
  await page.waitForFunction(() => !document.querySelector(`#staff tr[data-active="false"]`));

  step("revoke it, with a confirmation");
  await row.locator('button[data-action="revoke"]').click();
  await page.locator("#confirm").waitFor({ state: "visible" });
  await textIs("#confirm-title", `Révoquer « ${label} » ?`);
  await page.click("#confirm-ok");
  await page.waitForSelector(`tr[data-device-id="${deviceId}"][data-status="revoked"]`);
  check((await row.textContent()).includes("Révoquée"), "the row does not say révoquée");

  step("a chart has data");
  await page.waitForFunction(() => {
    const svg = document.querySelector("#chart-backlog svg");
    return svg && Number(svg.dataset.points) >= 1 && svg.querySelector("path.series-line, circle");
  });

  step("a patient's access history");
  await page.fill("#patient-id", "not an id");
  await page.click("#access-form button[type=submit]");
  await page.locator("#access-error").waitFor({ state: "visible" });
  await textIs("#access-error", /^Un identifiant de patient ressemble à /);
  // A patient the test's tablet read before the browser started: the history lists those reads.
  await page.fill("#patient-id", patientId);
  await page.click("#access-form button[type=submit]");
  await page.locator("#access-table").waitFor({ state: "visible" });
  await page.waitForFunction(() => document.querySelectorAll("#access-table tbody tr:not(.empty)").length >= 1);
  check((await text("#access-table tbody")).includes("infirmier·ère"), "the nurse's role is not in French");

  step("the request chart has points");
  await page.waitForFunction(() => {
    const svg = document.querySelector("#chart-requests svg");
    return svg && Number(svg.dataset.points) >= 2;
  });
  check(languagesAsked().every((lang) => lang === "fr"), "the page asked the gateway for another language than French");
  const french = await seen();

  step("switch to English: every text, and the gateway's answers");
  await page.click("#console-view button[data-lang=en]");
  check((await page.getAttribute("html", "lang")) === "en", "the page is not in English");
  await textIs("#logout", "Sign out");
  await textIs("#tablets-title", "Tablets");
  await textIs("#staff-title", "Staff");
  await textIs("#devices-table thead th:nth-child(3)", "Last seen");
  await textIs("#mode-pill", /^(Online|Failover|Offline)$/);
  await textIs("#timezone-note", `Times in the lab's time zone (${LAB_ZONE}).`);
  check((await row.textContent()).includes("Revoked"), "the row does not say revoked");
  check((await text("#access-table tbody")).includes("nurse"), "the nurse's role is not in English");
  await textIs("#refreshed", /^Updated \d\d:\d\d:\d\d$/);
  for (let waited = 0; !asked.includes("en"); waited += 100) {
    check(waited < 15_000, `the page did not ask for English answers: ${languagesAsked()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  languagesAsked();
  const english = await seen();

  step("English is remembered across a reload");
  await page.reload();
  await page.locator("#console-view").waitFor({ state: "visible" });
  check((await page.getAttribute("html", "lang")) === "en", "the reloaded page is not in English");
  await textIs("#logout", "Sign out");
  await textIs("#status-title", "Status");
  await page.waitForSelector(`tr[data-device-id="${deviceId}"][data-status="revoked"]`);
  check((await page.locator(`tr[data-device-id="${deviceId}"]`).textContent()).includes("Revoked"), "not revoked in English");

  step("back to French for the screenshot");
  await page.click("#console-view button[data-lang=fr]");
  check((await page.getAttribute("html", "lang")) === "fr", "the page is not in French again");
  await textIs("#logout", "Se déconnecter");
  await textIs("#status-title", "État");
  await textIs("#refreshed", /^Mis à jour à \d\d:\d\d:\d\d$/);
  await page.fill("#patient-id", patientId);
  await page.click("#access-form button[type=submit]");
  await page.waitForFunction(() => document.querySelectorAll("#access-table tbody tr:not(.empty)").length >= 1);
  check((await text("#access-table tbody")).includes("infirmier·ère"), "the nurse's role is not in French again");
  await page.waitForFunction(() => {
    const svg = document.querySelector("#chart-requests svg");
    return svg && Number(svg.dataset.points) >= 2;
  });

  if (problems.length) throw new Error(`the page reported problems:\n${problems.join("\n")}`);

  step("screenshot");
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: screenshot, fullPage: true });
  const screenshotLang = await page.getAttribute("html", "lang");
  console.log(JSON.stringify({ ok: true, device_id: deviceId, code, screenshot_lang: screenshotLang, seen: { fr: french, en: english } }));
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
