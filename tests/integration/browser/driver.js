// driver.js - open one page in Debian's Chromium (headless, fresh
// profile, every host name mapped to 127.0.0.1, no proxy) through
// playwright-core, wait, and write what happened as JSON:
//   {"console": [{type, text}], "requests": [{method, url}],
//    "responses": [{url, status}], "failed": [{url, error}],
//    "result": window.result, "launched": true}
// usage: node driver.js URL OUT.json SECONDS CHROMIUM [extra flag...]
// CHROMIUM may be a wrapper (the test's strace) that runs /usr/bin/chromium.
// Exit 3 when Chromium cannot start (the test then skips, or fails in CI).
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const [url, out, seconds, exe, ...extra] = process.argv.slice(2);
const log = { console: [], requests: [], responses: [], failed: [],
              result: null, launched: false };

(async () => {
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), "tp-chromium-"));
    let ctx;
    try {
        ctx = await chromium.launchPersistentContext(profile, {
            executablePath: exe,
            headless: true,
            ignoreHTTPSErrors: true,   // the test's own CA
            timeout: 60000,
            args: ["--no-sandbox", "--disable-gpu", "--disable-quic",
                   "--no-first-run", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync",
                   "--no-proxy-server",
                   "--host-resolver-rules=MAP * 127.0.0.1",
                   "--use-fake-ui-for-media-stream",
                   "--use-fake-device-for-media-stream", ...extra],
        });
    } catch (e) {
        console.error("chromium cannot start: " + String(e.message || e).split("\n")[0]);
        process.exit(3);
    }
    log.launched = true;
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on("console", (m) => log.console.push({ type: m.type(), text: m.text() }));
    page.on("pageerror", (e) => log.console.push({ type: "pageerror", text: String(e) }));
    page.on("request", (r) => log.requests.push({ method: r.method(), url: r.url() }));
    page.on("response", (r) => log.responses.push({ url: r.url(), status: r.status() }));
    page.on("requestfailed", (r) => log.failed.push({
        url: r.url(), error: (r.failure() || {}).errorText }));
    page.on("websocket", (w) => log.requests.push({ method: "WEBSOCKET", url: w.url() }));
    try {
        await page.goto(url, { waitUntil: "load", timeout: 60000 });
        await page.waitForTimeout(Number(seconds) * 1000);
        log.result = await page.evaluate(() => window.result);
    } catch (e) {
        log.result = { error: "driver: " + String(e.message || e).split("\n")[0] };
    }
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
    fs.writeFileSync(out, JSON.stringify(log));
})();
