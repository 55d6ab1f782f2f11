// The node's JSON API (/v1) and its WebSocket stream (/v1/stream, sequencer/api/stream.py).

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || "http_error";
  }
}

async function call(method, path, body, headers = {}) {
  const init = { method, headers: { accept: "application/json", ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["content-type"] = "application/json";
  }
  const r = await fetch("/v1" + path, init);
  const answer = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, answer);
  return answer;
}

// GET /v1<path> (headers: e.g. the signed auth headers of a private read)
export const get = (path, headers) => call("GET", path, undefined, headers);
export const post = (path, body) => call("POST", path, body);

// GET that answers null for a 404 (a thing that does not exist yet) instead of throwing
export async function getOrNull(path, headers) {
  try {
    return await get(path, headers);
  } catch (e) {
    if (e.status === 404) return null;
    throw e;
  }
}

let infoPromise = null;
// GET /v1/info, once per page load (EIP-712 domain and types, limits)
export function info() {
  if (!infoPromise) infoPromise = get("/info").catch((e) => { infoPromise = null; throw e; });
  return infoPromise;
}

// One WebSocket for the page. subscribe(channel, onData, onGap) returns an unsubscribe function.
// Messages are {channel, seq, data} with seq 1, 2, 3... per channel and connection: a skipped
// number means lost messages, so the subscriber is told to resync (onGap) before the data.
// On reconnect every channel is subscribed again and told to resync.
export class Stream {
  constructor(onState = () => {}) {
    this.subs = new Map();   // channel -> {onData, onGap, extra}
    this.seq = new Map();    // channel -> last seq seen on this connection
    this.onState = onState;
    this.listeners = new Map(); // non-subscription channels (heartbeat)
    this.retry = 500;
    this.connect();
  }

  connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/v1/stream`);
    this.ws = ws;
    ws.onopen = () => {
      this.retry = 500;
      this.seq.clear();
      this.onState(true);
      for (const [ch, s] of this.subs) {
        this.sendSubscribe(ch, s.extra);
        s.onGap();
      }
    };
    ws.onclose = () => {
      this.onState(false);
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 10000);
    };
    ws.onmessage = (ev) => this.receive(JSON.parse(ev.data));
    ws.onerror = () => {}; // a refused connection is reported by onclose (then retried)
  }

  receive(msg) {
    const { channel, seq, data } = msg;
    const last = this.seq.get(channel);
    this.seq.set(channel, seq);
    const s = this.subs.get(channel);
    if (s) {
      if (last !== undefined && seq !== last + 1) s.onGap();
      s.onData(data);
      return;
    }
    const l = this.listeners.get(channel);
    if (l) l(data);
  }

  send(obj) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  on(channel, fn) { this.listeners.set(channel, fn); }

  get live() { return this.ws.readyState === WebSocket.OPEN; }

  // `extra()`: more fields for the subscribe request, computed at each (re)subscribe (the
  // signed `auth` of an orders.<account> channel)
  async sendSubscribe(channel, extra) {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    let more = {};
    try { more = extra ? await extra() : {}; } catch (e) { console.warn("subscribe", channel, e); return; }
    this.send({ op: "subscribe", channel, ...more });
  }

  subscribe(channel, onData, onGap = () => {}, extra = null) {
    this.subs.set(channel, { onData, onGap, extra });
    this.sendSubscribe(channel, extra);
    return () => {
      if (this.subs.get(channel)?.onData !== onData) return;
      this.subs.delete(channel);
      this.seq.delete(channel);
      this.send({ op: "unsubscribe", channel });
    };
  }
}
