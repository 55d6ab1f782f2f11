// The node's JSON API (/v1) and its WebSocket stream (/v1/stream, sequencer/api/stream.py).

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || "http_error";
  }
}

export async function get(path) {
  const r = await fetch("/v1" + path, { headers: { accept: "application/json" } });
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

// One WebSocket for the page. subscribe(channel, onData, onGap) returns an unsubscribe function.
// Messages are {channel, seq, data} with seq 1, 2, 3... per channel and connection: a skipped
// number means lost messages, so the subscriber is told to resync (onGap) before the data.
// On reconnect every channel is subscribed again and told to resync.
export class Stream {
  constructor(onState = () => {}) {
    this.subs = new Map();   // channel -> {onData, onGap}
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
        this.send({ op: "subscribe", channel: ch });
        s.onGap();
      }
    };
    ws.onclose = () => {
      this.onState(false);
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 10000);
    };
    ws.onmessage = (ev) => this.receive(JSON.parse(ev.data));
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

  subscribe(channel, onData, onGap = () => {}) {
    this.subs.set(channel, { onData, onGap });
    this.send({ op: "subscribe", channel });
    return () => {
      if (this.subs.get(channel)?.onData !== onData) return;
      this.subs.delete(channel);
      this.seq.delete(channel);
      this.send({ op: "unsubscribe", channel });
    };
  }
}
