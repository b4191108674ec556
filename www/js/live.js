// The server's event stream (`GET /v1/events/stream`, server-sent events),
// read with `fetch`: the API wants `Authorization: Bearer`, which the
// browser's `EventSource` cannot send. After a drop the stream reconnects
// with `Last-Event-ID`, so no event between the two connections is missed.

// Waits between reconnections: quick after the first drop, then slower, so a
// server that is down is not called in a tight loop.
const RETRY_MS = [500, 1000, 2000, 5000, 10000];

/**
 * Splits a server-sent event stream into events. `feed` takes decoded text
 * in any chunking and returns the complete events it closed, each
 * `{ id, type, data }` (`data` as text); comment lines are skipped.
 * `lastEventId` is the id to resume after, as the SSE standard keeps it: an
 * `id:` counts once its block ends, even a block without data.
 */
export class EventParser {
  constructor() {
    this.buffer = "";
    this.lastEventId = null;
    this.reset();
  }

  reset() {
    this.id = null;
    this.type = null;
    this.data = [];
  }

  feed(text) {
    this.buffer += text;
    const events = [];
    let end;
    while ((end = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, end);
      const breakLength = this.buffer.startsWith("\r\n", end) ? 2 : 1;
      // A lone \r at the very end may be the first half of \r\n.
      if (breakLength === 1 && this.buffer[end] === "\r" && end === this.buffer.length - 1) break;
      this.buffer = this.buffer.slice(end + breakLength);
      if (line === "") {
        if (this.id) this.lastEventId = this.id;
        if (this.data.length > 0) events.push({ id: this.lastEventId, type: this.type ?? "message", data: this.data.join("\n") });
        this.reset();
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "id" && !value.includes("\0")) this.id = value;
      else if (field === "event") this.type = value;
      else if (field === "data") this.data.push(value);
    }
    return events;
  }
}

/**
 * Follows the event stream of the server at `base` with `token`, calling
 * `onEvent(event)` with each parsed event (`{ id, type, requestId, … }`) and
 * `onState(state)` with `connecting`, `live`, `reconnecting`, `refused` (the
 * token is no longer accepted: the stream stops) or `stopped`.
 */
export class LiveEvents {
  constructor({ base = "", token, onEvent, onState = () => {} }) {
    this.base = base;
    this.token = token;
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastEventId = null;
    this.controller = null;
    this.running = false;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.follow();
  }

  stop() {
    this.running = false;
    this.controller?.abort();
    this.onState("stopped");
  }

  async follow() {
    let failures = 0;
    while (this.running) {
      this.onState(failures === 0 ? "connecting" : "reconnecting");
      this.controller = new AbortController();
      const headers = { Accept: "text/event-stream", Authorization: `Bearer ${this.token}` };
      if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
      try {
        const response = await fetch(`${this.base}/v1/events/stream`, { headers, signal: this.controller.signal, cache: "no-store" });
        if (response.status === 401) {
          this.running = false;
          this.onState("refused");
          return;
        }
        if (response.ok && response.body) {
          this.onState("live");
          failures = 0;
          await this.read(response.body);
        }
      } catch {
        // A drop (network, server restart) or our own abort: both end this
        // connection; the loop decides whether to open another.
      }
      if (!this.running) return;
      const wait = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)];
      failures += 1;
      this.onState("reconnecting");
      await new Promise((done) => setTimeout(done, wait));
    }
  }

  /** Reads one connection until it ends (or `stop` aborts it). */
  async read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new EventParser();
    while (this.running) {
      const { value, done } = await reader.read();
      if (done) return;
      const events = parser.feed(value);
      this.lastEventId = parser.lastEventId ?? this.lastEventId;
      for (const event of events) {
        let data;
        try {
          data = JSON.parse(event.data);
        } catch {
          continue; // not an event of the log: nothing to refresh
        }
        this.onEvent({ ...data, type: data.type ?? event.type, id: data.id ?? event.id });
      }
    }
  }
}
