// Test harness of the policy editor: the real signoff server on a free
// loopback port, a static file server for local mode, and Debian's chromium
// driven by playwright-core. Nothing here skips: a missing browser, binary or
// package fails the test that needs it.

import { spawn } from "node:child_process";
import { once } from "node:events";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { createServer } from "node:http";
import { connect, createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

export const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
export const WWW = join(ROOT, "www");
// The JS package under test; SIGNOFF_TEST_PKG points elsewhere (e.g. a build
// in progress). Both the signoff server and the static server serve it.
export const PKG = resolve(process.env.SIGNOFF_TEST_PKG ?? join(ROOT, "wasm", "pkg", "web"));
// A run on Redis (SIGNOFF_TEST_CACHE=redis) keeps its screenshots apart, so
// that it does not clear the in-memory run's.
export const RESULTS = process.env.SIGNOFF_TEST_CACHE === "redis"
  ? join(WWW, "test-results", "redis")
  : join(WWW, "test-results");
// Where cargo put the server: CARGO_TARGET_DIR when set (as `cargo xtask
// browser` then builds it there), else the workspace's target/.
const TARGET_DIR = resolve(ROOT, process.env.CARGO_TARGET_DIR || "target");
export const SERVER_BINARY = join(TARGET_DIR, "release", "signoff");

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

async function waitFor(check, { timeoutMs, what }) {
  const deadline = Date.now() + timeoutMs;
  let last = null;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      // A check that can never pass (the server exited) ends the wait now.
      if (error.fatal) throw error;
      last = error;
    }
    await new Promise((done) => setTimeout(done, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

/**
 * Parses the demo principals the server prints at start, lines such as
 * `  alice  roles engineer  Authorization: Bearer dev-alice`.
 */
export function parseTokens(output) {
  const principals = {};
  for (const line of output.split("\n")) {
    const match = /^\s*(\S+)\s+roles\s+(\S*)\s+Authorization: Bearer (\S+)\s*$/.exec(line);
    if (match) principals[match[1]] = { id: match[1], roles: match[2].split(",").filter(Boolean), token: match[3] };
  }
  return principals;
}

/** The address the server's start banner says it listens on. */
export function parseAddress(output) {
  return /running in demo mode \(--dev\) on (http:\/\/\S+)/.exec(output)?.[1] ?? null;
}

/**
 * Starts `signoff serve --dev` on a port the system chooses; resolves once it
 * is ready. The server binds port 0 itself and prints where it listens: a
 * port picked here and bound later could be taken meanwhile by another
 * program on the machine. `extraArgs` go after the demo ones (e.g. an
 * OpenID Connect issuer). `cache` is `memory` (the embedded cache) or
 * `redis` (a private `redis-server`, stopped with the server); the
 * environment's SIGNOFF_TEST_CACHE chooses it for a whole run.
 */
export async function startServer({ extraArgs = [], cache = process.env.SIGNOFF_TEST_CACHE ?? "memory" } = {}) {
  if (cache !== "memory" && cache !== "redis") throw new Error(`unknown cache ${cache}: memory or redis`);
  const redis = cache === "redis" ? await startRedis() : null;
  try {
    const server = await startSignoff(redis ? [...extraArgs, "--redis-url", redis.url] : extraArgs);
    return {
      ...server,
      cache,
      async stop() {
        await server.stop();
        await redis?.stop();
      },
    };
  } catch (error) {
    await redis?.stop();
    throw error;
  }
}

/** A free loopback port, as the system hands one out. */
async function freePort() {
  const probe = createNetServer();
  probe.listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address();
  probe.close();
  await once(probe, "close");
  return port;
}

/**
 * A private `redis-server` on a free loopback port, keeping nothing on disk
 * (its directory is removed when it stops); resolves once it answers. Redis
 * cannot bind port 0 and say which port it got, so the port is picked here:
 * when another program took it meanwhile, redis exits and another is tried.
 */
export async function startRedis() {
  let last = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startRedisOnce();
    } catch (error) {
      last = error;
    }
  }
  throw last;
}

async function startRedisOnce() {
  const dir = await mkdtemp(join(tmpdir(), "signoff-redis-"));
  const port = await freePort();
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk) => { stderr += chunk; });
  let exited = null;
  child.on("exit", (code, signal) => { exited = { code, signal }; });
  child.on("error", (error) => { exited = { error: error.message }; });
  const stop = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      await once(child, "exit").catch(() => {});
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(() => {
      if (exited) throw Object.assign(new Error(`redis-server exited (${JSON.stringify(exited)}): ${stderr}`), { fatal: true });
      return new Promise((done) => {
        const socket = connect(port, "127.0.0.1");
        socket.once("connect", () => { socket.end(); done(true); });
        socket.once("error", () => done(false));
      });
    }, { timeoutMs: 30_000, what: "redis-server to start" });
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `redis://127.0.0.1:${port}`, stop };
}

/** `signoff serve --dev` with `extraArgs`, on a port the server chooses. */
async function startSignoff(extraArgs) {
  await stat(SERVER_BINARY).catch(() => {
    throw new Error(`${SERVER_BINARY} is missing: cargo build --release -p signoff-host --bin signoff`);
  });
  await stat(join(PKG, "index.js")).catch(() => {
    throw new Error(`${join(PKG, "index.js")} is missing: build the JS package with cargo xtask js`);
  });
  const child = spawn(SERVER_BINARY, ["serve", "--dev", "--listen", "127.0.0.1:0", "--www-dir", WWW, "--pkg-dir", PKG, ...extraArgs], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk) => { stdout += chunk; });
  child.stderr.setEncoding("utf8").on("data", (chunk) => { stderr += chunk; });
  let exited = null;
  child.on("exit", (code, signal) => { exited = { code, signal }; });
  let url = null;
  try {
    await waitFor(async () => {
      if (exited) {
        throw Object.assign(new Error(`the server exited (${JSON.stringify(exited)}): ${stderr.slice(-2000)}`), { fatal: true });
      }
      // The banner goes to stdout or stderr, depending on the server's build.
      url ??= parseAddress(stdout + stderr);
      const principals = parseTokens(stdout + stderr);
      if (!url || Object.keys(principals).length === 0) return false;
      const response = await fetch(`${url}/healthz`);
      return response.ok;
    }, { timeoutMs: 30_000, what: "the server to start" });
  } catch (error) {
    child.kill("SIGKILL");
    throw new Error(`${error.message}\nstdout: ${stdout.slice(-2000)}\nstderr: ${stderr.slice(-2000)}`);
  }
  return {
    url,
    principals: parseTokens(stdout + stderr),
    async stop() {
      if (exited) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await once(child, "exit").catch(() => {});
      clearTimeout(timer);
    },
  };
}

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".png": "image/png",
};

/**
 * Serves www/ at `/` and the JS package at `/pkg/` as plain files (no API),
 * the way the editor is used without a server.
 */
export async function startStaticServer() {
  const server = createServer(async (request, response) => {
    const path = decodeURIComponent(new URL(request.url, "http://x").pathname);
    const [base, rest] = path.startsWith("/pkg/") ? [PKG, path.slice(5)] : [WWW, path === "/" ? "index.html" : path.slice(1)];
    const file = normalize(join(base, rest));
    const info = file.startsWith(base + sep) ? await stat(file).catch(() => null) : null;
    if (!info?.isFile() || file.includes(`${sep}tests${sep}`)) {
      response.writeHead(404, { "Content-Type": "text/plain" }).end("not found");
      return;
    }
    response.writeHead(200, { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream" });
    createReadStream(file).pipe(response);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    async stop() {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}

/** Chromium in a fresh profile; fails (never skips) when it cannot start. */
export async function launchBrowser() {
  await stat(CHROMIUM).catch(() => {
    throw new Error(`${CHROMIUM} is missing: apt-get install chromium chromium-driver`);
  });
  const profile = await mkdtemp(join(tmpdir(), "signoff-www-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/**
 * A page that records uncaught errors and console errors. Failed API calls
 * the test provokes on purpose (4xx from /v1/ or /healthz, and any status
 * from an address the test lists in `page.failuresExpected`, where it makes
 * the server fail) are expected and filtered; anything else fails
 * `assertClean`.
 */
export async function openPage(context, url) {
  const page = await context.newPage();
  const problems = [];
  // Every API call the page makes, in order, for tests that count them.
  page.apiCalls = [];
  page.on("request", (request) => {
    const address = new URL(request.url());
    if (!address.pathname.startsWith("/v1/")) return;
    page.apiCalls.push({
      method: request.method(),
      path: address.pathname,
      search: address.search,
      idempotencyKey: request.headers()["idempotency-key"] ?? null,
    });
  });
  page.on("pageerror", (error) => problems.push(`uncaught: ${error.message}`));
  page.failuresExpected = [];
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const where = message.location()?.url ?? "";
    const failed = /Failed to load resource: the server responded with a status of (\d{3})/.exec(message.text());
    const expected = failed !== null
      && ((failed[1].startsWith("4") && /\/(v1\/|healthz)/.test(where))
        || page.failuresExpected.some((path) => new URL(where, "http://x").pathname === path));
    if (!expected) problems.push(`console: ${message.text()} (${where})`);
  });
  // SIGNOFF_TEST_TIMEOUT_MS shortens every wait, e.g. to see quickly which
  // tests fail against another version of the editor.
  if (process.env.SIGNOFF_TEST_TIMEOUT_MS) page.setDefaultTimeout(Number(process.env.SIGNOFF_TEST_TIMEOUT_MS));
  await page.goto(url);
  await page.waitForFunction(() => document.documentElement.dataset.ready, null, { timeout: 20_000 });
  const ready = await page.evaluate(() => document.documentElement.dataset.ready);
  if (ready !== "true") throw new Error(`the editor did not become ready: ${await page.locator("#banner").textContent()}`);
  page.problems = problems;
  return page;
}

let shot = 0;
/**
 * Saves a full-page screenshot as www/test-results/NN-name.png, or as
 * name.png when `numbered` is false (a name that stays the same from run to
 * run, to compare them).
 */
export async function screenshot(page, name, { numbered = true } = {}) {
  await mkdir(RESULTS, { recursive: true });
  let file = `${name}.png`;
  if (numbered) {
    shot += 1;
    file = `${String(shot).padStart(2, "0")}-${file}`;
  }
  const path = join(RESULTS, file);
  await page.screenshot({ path, fullPage: true });
  // A full-page capture resizes the viewport and back; until the next frame
  // the page can scroll under the pointer of the following click. Settle it.
  await page.evaluate(() => new Promise((done) => {
    scrollTo(0, 0);
    requestAnimationFrame(() => done());
  }));
  return path;
}
