// Small SVG charts (no library): the ATM-vol term structure and an order book's depth.
const NS = "http://www.w3.org/2000/svg";

export function svgEl(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function frame(cls, title, width, height) {
  const svg = svgEl("svg", { class: "chart " + cls, width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  svg.append(svgEl("title", {}, title));
  return svg;
}

function axes(svg, pad, width, height, labels) {
  svg.append(svgEl("line", { x1: pad.l, y1: height - pad.b, x2: width - pad.r, y2: height - pad.b, stroke: "#ccc" }));
  svg.append(svgEl("line", { x1: pad.l, y1: pad.t, x2: pad.l, y2: height - pad.b, stroke: "#ccc" }));
  const [xl, xr, yt, yb] = labels;
  svg.append(svgEl("text", { x: pad.l, y: height - 6 }, xl));
  svg.append(svgEl("text", { x: width - pad.r, y: height - 6, "text-anchor": "end" }, xr));
  svg.append(svgEl("text", { x: 2, y: pad.t + 8 }, yt));
  svg.append(svgEl("text", { x: 2, y: height - pad.b }, yb));
}

// ATM implied vol of each expiry: IV interpolated linearly in strike at spot (the nearest
// strike's IV when spot is outside the listed strikes). rows: [{strike, iv}] (USD, fraction).
export function atmVol(rows, spot) {
  const pts = rows.filter((r) => Number.isFinite(r.iv)).sort((a, b) => a.strike - b.strike);
  if (pts.length === 0 || !Number.isFinite(spot)) return NaN;
  if (spot <= pts[0].strike) return pts[0].iv;
  for (let i = 1; i < pts.length; i++) {
    const [a, b] = [pts[i - 1], pts[i]];
    if (spot <= b.strike) return a.iv + ((b.iv - a.iv) * (spot - a.strike)) / (b.strike - a.strike || 1);
  }
  return pts[pts.length - 1].iv;
}

// points: [{days: time to expiry in days, iv: fraction, label}]
export function termStructure(points, width = 280, height = 160) {
  const svg = frame("term", "ATM implied volatility vs time to expiry", width, height);
  const pts = points.filter((p) => Number.isFinite(p.iv) && Number.isFinite(p.days)).sort((a, b) => a.days - b.days);
  if (pts.length === 0) {
    svg.append(svgEl("text", { x: 10, y: height / 2 }, "no marks yet"));
    return svg;
  }
  const pad = { l: 36, r: 8, t: 8, b: 20 };
  let [x0, x1] = [Math.min(0, pts[0].days), pts[pts.length - 1].days];
  let y0 = Math.min(...pts.map((p) => p.iv)), y1 = Math.max(...pts.map((p) => p.iv));
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 - y0 < 0.02) { y0 -= 0.01; y1 += 0.01; }
  const X = (v) => pad.l + ((v - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const Y = (v) => height - pad.b - ((v - y0) / (y1 - y0)) * (height - pad.t - pad.b);
  axes(svg, pad, width, height, [`${x0.toFixed(0)}d`, `${x1.toFixed(0)}d`, (y1 * 100).toFixed(0) + "%", (y0 * 100).toFixed(0) + "%"]);
  svg.append(svgEl("polyline", { class: "line", points: pts.map((p) => `${X(p.days)},${Y(p.iv)}`).join(" ") }));
  for (const p of pts) {
    const c = svgEl("circle", { class: "pt", cx: X(p.days), cy: Y(p.iv), r: 3 });
    c.append(svgEl("title", {}, `${p.label}: ${(p.iv * 100).toFixed(1)}% ATM (${p.days.toFixed(1)} days)`));
    svg.append(c);
  }
  return svg;
}

// Cumulative depth: bids and asks as [[price, amount], ...] best first (numbers, USD and
// contracts); steps outward from the mid.
export function depth(bids, asks, width = 360, height = 200) {
  const svg = frame("depth", "cumulative depth: bids and asks", width, height);
  if (bids.length === 0 && asks.length === 0) {
    svg.append(svgEl("text", { x: 10, y: height / 2 }, "empty book"));
    return svg;
  }
  const cum = (levels) => {
    let t = 0;
    return levels.map(([p, a]) => [p, (t += a)]);
  };
  const b = cum(bids), a = cum(asks);
  const prices = [...b, ...a].map(([p]) => p);
  let x0 = Math.min(...prices), x1 = Math.max(...prices);
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  const ymax = Math.max(b.length ? b[b.length - 1][1] : 0, a.length ? a[a.length - 1][1] : 0) || 1;
  const pad = { l: 40, r: 8, t: 8, b: 20 };
  const X = (v) => pad.l + ((v - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const Y = (v) => height - pad.b - (v / ymax) * (height - pad.t - pad.b);
  axes(svg, pad, width, height, [x0.toFixed(1), x1.toFixed(1), String(+ymax.toFixed(2)), "0"]);
  const area = (levels, cls) => {
    if (levels.length === 0) return;
    const pts = [`${X(levels[0][0])},${Y(0)}`];
    let prev = 0;
    for (const [p, c] of levels) { pts.push(`${X(p)},${Y(prev)}`, `${X(p)},${Y(c)}`); prev = c; }
    const edge = cls === "bids" ? x0 : x1;
    pts.push(`${X(edge)},${Y(prev)}`, `${X(edge)},${Y(0)}`);
    svg.append(svgEl("polygon", { class: cls, points: pts.join(" ") }));
  };
  area(b, "bids");
  area(a, "asks");
  return svg;
}
