// An order book kept from GET /v1/book/{name} and the stream's book.<name> snapshots and deltas.
import { get } from "./api.js";

export class Book {
  constructor(name, depth = 20, onChange = () => {}) {
    this.name = name;
    this.depth = depth;
    this.onChange = onChange;
    this.sequence = -1;
    this.bids = new Map(); // price (string) -> amount (string)
    this.asks = new Map();
  }

  // the stream handlers for stream.subscribe("book." + name, ...)
  attach(stream) {
    return stream.subscribe("book." + this.name, (d) => this.apply(d), () => this.resync());
  }

  async resync() {
    try {
      this.apply({ type: "snapshot", ...(await get(`/book/${encodeURIComponent(this.name)}?depth=${this.depth}`)) });
    } catch (e) {
      console.warn("book resync", this.name, e);
    }
  }

  apply(d) {
    if (d.type === "snapshot") {
      if (d.sequence < this.sequence) return; // an older REST answer than what the stream gave
      this.bids = new Map(d.bids);
      this.asks = new Map(d.asks);
    } else if (d.type === "delta") {
      if (d.sequence <= this.sequence) return; // already in a snapshot we hold
      for (const [side, levels] of [[this.bids, d.bids], [this.asks, d.asks]]) {
        for (const [p, a] of levels) {
          if (a === "0") side.delete(p); else side.set(p, a);
        }
      }
    } else return;
    this.sequence = d.sequence;
    this.onChange(this);
  }

  // levels best first: [[price, amount], ...]
  levels(side) {
    const m = side === "bids" ? this.bids : this.asks;
    const rows = [...m.entries()].sort((x, y) => Number(x[0]) - Number(y[0]));
    return side === "bids" ? rows.reverse() : rows;
  }

  best(side) { return this.levels(side)[0] || null; }
}
