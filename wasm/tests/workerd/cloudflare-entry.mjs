// The Cloudflare example (wasm/examples/cloudflare/worker.mjs) as the tests
// run it: the same Worker and Durable Object, with a clock the test moves
// (`POST /__test/clock` with the milliseconds to add) and sequential ids;
// `GET /__test/conformance` runs the cache conformance check over a Durable
// Object of the same class that holds nothing else.
import { checkCache } from "signoff/conformance";

import { SignoffCache, createWorker } from "../../examples/cloudflare/worker.mjs";

export { SignoffCache };

let now = Date.parse("2026-01-01T00:00:00.000Z");
let lastId = 0;

const worker = createWorker({
  clock: () => now,
  ids: () => {
    lastId += 1;
    return `00000000-0000-4000-8000-${String(lastId).padStart(12, "0")}`;
  },
});

export default {
  async fetch(request, env, ctx) {
    const path = new URL(request.url).pathname;
    if (path === "/__test/conformance") {
      const cache = env.SIGNOFF_CACHE.get(env.SIGNOFF_CACHE.idFromName("conformance"));
      return Response.json(await checkCache(cache));
    }
    if (path === "/__test/clock") {
      now += Number(await request.text());
      return new Response(String(now));
    }
    return worker.fetch(request, env, ctx);
  },
  scheduled: worker.scheduled,
};
