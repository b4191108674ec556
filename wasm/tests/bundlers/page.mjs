// Imported (`node --import`) before a bundle runs in Node, to make Node look
// like a browser page served from the bundle's folder (SIGNOFF_PAGE_URL):
// `document.baseURI` and `self.location` are that page, and `fetch` serves
// `file:` URLs from disk, as the web server would serve them.
import { readFile } from "node:fs/promises";

const page = process.env.SIGNOFF_PAGE_URL;
globalThis.self = globalThis;
globalThis.location = new URL(page);
globalThis.document = { baseURI: page, currentScript: null };

const networkFetch = globalThis.fetch;
globalThis.fetch = async (input, init) => {
  const url = new URL(input instanceof Request ? input.url : String(input), page);
  if (url.protocol !== "file:") return networkFetch(input, init);
  const body = await readFile(url);
  const type = url.pathname.endsWith(".wasm") ? "application/wasm" : "application/octet-stream";
  return new Response(body, { headers: { "content-type": type } });
};
