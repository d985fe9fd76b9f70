// The browser demo in headless Chromium (Debian's, driven by playwright-core): two pages and one Rust bot in one
// room. A move on one page appears on the other; a chat reaches both pages and the bot; the bot's reaches both.
// Then the same page over https and its game over wss.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { chromium, type Page } from "playwright-core";
import { binary, startServer } from "./server.js";

const docs = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../docs");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

async function join(page: Page, url: string, name: string): Promise<string> {
  await page.goto(url);
  await page.fill("#name", name);
  await page.fill("#room", "7");
  await page.click("#login button");
  await page.waitForSelector("body[data-room='7']", { timeout: 10_000 });
  return (await page.getAttribute("body", "data-player-id"))!;
}

test("two pages and a Rust bot play in one room", async () => {
  // With --handshake and login tokens: the page (and the Rust bot) must open with the version handshake, and log
  // in with a token (the page gets one from --dev-tokens, the bot signs its own with the secret).
  const secret = path.join(mkdtempSync(path.join(tmpdir(), "browser-test-")), "secret");
  writeFileSync(secret, "a browser test secret\n");
  const server = await startServer(0, ["--handshake", "--auth-secret-file", secret, "--dev-tokens"]);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox"] });
  const bot = spawn(binary("examples/chat_client"), ["--addr", `127.0.0.1:${server.port}`, "--name", "rustbot", "--room", "7", "--handshake", "--auth-secret-file", secret], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const botLines: string[] = [];
  createInterface({ input: bot.stdout! }).on("line", (line) => botLines.push(line));
  const botSaw = async (text: string) => {
    for (let i = 0; i < 200 && !botLines.some((l) => l.includes(text)); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(botLines.some((l) => l.includes(text)), `the bot printed ${JSON.stringify(text)}: ${botLines.join(" | ")}`);
  };
  try {
    const url = `http://127.0.0.1:${server.webPort}/`;
    const [alice, bob] = [await browser.newPage(), await browser.newPage()];
    const aliceId = await join(alice, url, "alice");
    const bobId = await join(bob, url, "bob");
    await botSaw("in room 7");
    // Each page shows the other (and the bot) as a dot.
    await alice.waitForSelector(`.player[data-player-id="${bobId}"]`, { timeout: 10_000 });
    await bob.waitForSelector(`.player[data-player-id="${aliceId}"]`, { timeout: 10_000 });

    // Alice moves twice to the right and once down: Bob's page shows her there.
    await alice.click("h1");
    for (const key of ["ArrowRight", "ArrowRight", "ArrowDown"]) await alice.keyboard.press(key);
    await bob.waitForSelector(`.player[data-player-id="${aliceId}"][data-x="20"][data-y="10"]`, { timeout: 10_000 });

    // Alice chats: both pages and the bot get it.
    await alice.fill("#line", "hello from the browser");
    await alice.click("#say button");
    for (const page of [alice, bob]) {
      await page.waitForSelector(`#chat li[data-from="${aliceId}"]:has-text("hello from the browser")`, { timeout: 10_000 });
    }
    await botSaw("hello from the browser");
    // The bot chats: both pages get it.
    bot.stdin!.write("hello from rust\n");
    for (const page of [alice, bob]) {
      await page.waitForSelector(`#chat li:has-text("hello from rust")`, { timeout: 10_000 });
    }
    await bob.screenshot({ path: path.join(docs, "browser-demo.png") });
  } finally {
    bot.kill();
    await browser.close();
    await server.stop();
  }
});

// The same page over https, its game over wss: the server with `--tls-cert`/`--tls-key` (a self-signed certificate
// made by openssl for this run; Chromium is told to accept it), two pages meet in a room and chat.
test("the browser demo plays over https and wss", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "packet-wss-"));
  const [cert, key] = [path.join(dir, "cert.pem"), path.join(dir, "key.pem")];
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-keyout", key, "-out", cert,
  ], { stdio: "ignore" });
  const server = await startServer(0, ["--tls-cert", cert, "--tls-key", key]);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--ignore-certificate-errors"],
  });
  try {
    const url = `https://127.0.0.1:${server.webPort}/`;
    const [alice, bob] = [await browser.newPage(), await browser.newPage()];
    await join(alice, url, "alice");
    const bobId = await join(bob, url, "bob");
    await alice.waitForSelector(`.player[data-player-id="${bobId}"]`, { timeout: 10_000 });
    assert.equal(await alice.evaluate(() => location.protocol), "https:");
    await bob.fill("#line", "hello over wss");
    await bob.click("#say button");
    await alice.waitForSelector(`#chat li[data-from="${bobId}"]:has-text("hello over wss")`, { timeout: 10_000 });
    // Clear text is not served on the TLS port.
    await assert.rejects(fetch(`http://127.0.0.1:${server.webPort}/`));
  } finally {
    await browser.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
