// What the page needs to sign like an Ethereum wallet, in plain BigInt JavaScript (no library,
// nothing fetched): keccak-256 (Keccak-f[1600], original padding), SHA-256 and HMAC-SHA256 (for
// RFC 6979 nonces), and secp256k1 (public key, address, deterministic low-s recoverable
// signatures). Tested against eth-account (tests/sequencer/api/test_page_crypto.py).
// Not constant-time: fine for a page holding a key in memory for a session, nothing more.

// -- bytes ---------------------------------------------------------------------------------------

export function hexToBytes(hex) {
  const h = hex.startsWith("0x") || hex.startsWith("0X") ? hex.slice(2) : hex;
  if (h.length % 2 || /[^0-9a-fA-F]/.test(h)) throw new Error("invalid hex");
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesToHex(b) {
  return "0x" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let i = 0;
  for (const p of parts) { out.set(p, i); i += p.length; }
  return out;
}

export const utf8 = (s) => new TextEncoder().encode(s);

export function bytesToBig(b) {
  return b.length === 0 ? 0n : BigInt(bytesToHex(b));
}

export function bigToBytes(n, len = 32) {
  return hexToBytes(n.toString(16).padStart(len * 2, "0"));
}

// -- keccak-256 ------------------------------------------------------------------------------------

const M64 = (1n << 64n) - 1n;
const rotl = (x, n) => (n === 0n ? x : ((x << n) | (x >> (64n - n))) & M64);
// rotation offsets by lane x + 5y
const RHO = [0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14].map(BigInt);
// round constants, from the LFSR x^8 + x^6 + x^5 + x^4 + 1 (FIPS 202, 3.2.5)
const RC = [];
for (let r = 0, R = 1; r < 24; r++) {
  let c = 0n;
  for (let j = 0; j < 7; j++) {
    R = ((R << 1) ^ ((R >> 7) * 0x71)) & 0xff;
    if (R & 2) c |= 1n << ((1n << BigInt(j)) - 1n);
  }
  RC.push(c);
}

function keccakF(s) {
  for (let round = 0; round < 24; round++) {
    const C = [0, 1, 2, 3, 4].map((x) => s[x] ^ s[x + 5] ^ s[x + 10] ^ s[x + 15] ^ s[x + 20]);
    for (let x = 0; x < 5; x++) {
      const D = C[(x + 4) % 5] ^ rotl(C[(x + 1) % 5], 1n);
      for (let y = 0; y < 25; y += 5) s[x + y] ^= D;
    }
    const B = new Array(25);
    for (let x = 0; x < 5; x++) {
      for (let y = 0; y < 5; y++) B[y + 5 * ((2 * x + 3 * y) % 5)] = rotl(s[x + 5 * y], RHO[x + 5 * y]);
    }
    for (let y = 0; y < 25; y += 5) {
      for (let x = 0; x < 5; x++) s[x + y] = B[x + y] ^ (~B[((x + 1) % 5) + y] & M64 & B[((x + 2) % 5) + y]);
    }
    s[0] ^= RC[round];
  }
}

export function keccak256(data) {
  const rate = 136;
  const padded = new Uint8Array((Math.floor(data.length / rate) + 1) * rate);
  padded.set(data);
  padded[data.length] ^= 0x01;
  padded[padded.length - 1] ^= 0x80;
  const s = new Array(25).fill(0n);
  for (let off = 0; off < padded.length; off += rate) {
    for (let i = 0; i < rate / 8; i++) {
      let lane = 0n;
      for (let b = 7; b >= 0; b--) lane = (lane << 8n) | BigInt(padded[off + 8 * i + b]);
      s[i] ^= lane;
    }
    keccakF(s);
  }
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((s[i >> 3] >> BigInt(8 * (i & 7))) & 0xffn);
  return out;
}

// -- SHA-256 and HMAC (RFC 6979 only) -----------------------------------------------------------

const K256 = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);

export function sha256(data) {
  const H = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const len = Math.ceil((data.length + 9) / 64) * 64;
  const m = new Uint8Array(len);
  m.set(data);
  m[data.length] = 0x80;
  new DataView(m.buffer).setUint32(len - 4, data.length * 8); // messages < 512 MB
  const w = new Uint32Array(64), dv = new DataView(m.buffer);
  const ror = (x, n) => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < len; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = dv.getUint32(off + 4 * i);
    for (let i = 16; i < 64; i++) {
      const s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    let [a, b, c, d, e, f, g, h] = H;
    for (let i = 0; i < 64; i++) {
      const t1 = (h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i]) >>> 0;
      const t2 = ((ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      [h, g, f, e, d, c, b, a] = [g, f, e, (d + t1) >>> 0, c, b, a, (t1 + t2) >>> 0];
    }
    [a, b, c, d, e, f, g, h].forEach((v, i) => { H[i] += v; });
  }
  const out = new Uint8Array(32);
  H.forEach((v, i) => new DataView(out.buffer).setUint32(4 * i, v));
  return out;
}

export function hmacSha256(key, msg) {
  const k = new Uint8Array(64);
  k.set(key.length > 64 ? sha256(key) : key);
  return sha256(concat(k.map((x) => x ^ 0x5c), sha256(concat(k.map((x) => x ^ 0x36), msg))));
}

// -- secp256k1 -----------------------------------------------------------------------------------

const P = 2n ** 256n - 2n ** 32n - 977n;
export const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const G = [0x79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798n,
  0x483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8n, 1n];

const mod = (a, m = P) => ((a % m) + m) % m;

function inv(a, m = P) { // extended Euclid
  let [r0, r1, s0, s1] = [mod(a, m), m, 1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1, s0, s1] = [r1, r0 - q * r1, s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new Error("not invertible");
  return mod(s0, m);
}

// points in Jacobian coordinates [X, Y, Z] (x = X/Z², y = Y/Z³); Z = 0 is the point at infinity
function double([X, Y, Z]) {
  if (Z === 0n || Y === 0n) return [0n, 1n, 0n];
  const A = mod(X * X), B = mod(Y * Y), C = mod(B * B);
  const D = mod(2n * (mod((X + B) ** 2n) - A - C)), E = mod(3n * A), F = mod(E * E);
  const X3 = mod(F - 2n * D);
  return [X3, mod(E * (D - X3) - 8n * C), mod(2n * Y * Z)];
}

function add(p, q) {
  const [X1, Y1, Z1] = p, [X2, Y2, Z2] = q;
  if (Z1 === 0n) return q;
  if (Z2 === 0n) return p;
  const Z1Z1 = mod(Z1 * Z1), Z2Z2 = mod(Z2 * Z2);
  const U1 = mod(X1 * Z2Z2), U2 = mod(X2 * Z1Z1);
  const S1 = mod(Y1 * Z2 * Z2Z2), S2 = mod(Y2 * Z1 * Z1Z1);
  if (U1 === U2) return S1 === S2 ? double(p) : [0n, 1n, 0n];
  const H = mod(U2 - U1), R = mod(S2 - S1), HH = mod(H * H), HHH = mod(H * HH);
  const X3 = mod(R * R - HHH - 2n * U1 * HH);
  return [X3, mod(R * (U1 * HH - X3) - S1 * HHH), mod(H * Z1 * Z2)];
}

function multiply(k, point = G) {
  let acc = [0n, 1n, 0n];
  for (let i = BigInt(k.toString(2).length) - 1n; i >= 0n; i--) {
    acc = double(acc);
    if ((k >> i) & 1n) acc = add(acc, point);
  }
  return acc;
}

function affine([X, Y, Z]) {
  const zi = inv(Z), zi2 = mod(zi * zi);
  return [mod(X * zi2), mod(Y * zi2 * zi)];
}

function scalar(key) {
  const d = typeof key === "bigint" ? key : bytesToBig(typeof key === "string" ? hexToBytes(key) : key);
  if (d <= 0n || d >= N) throw new Error("private key out of range");
  return d;
}

export function publicKey(key) { // 64 bytes x ‖ y
  const [x, y] = affine(multiply(scalar(key)));
  return concat(bigToBytes(x), bigToBytes(y));
}

export function toChecksum(addr) { // EIP-55
  const h = addr.toLowerCase().replace(/^0x/, "");
  const hash = bytesToHex(keccak256(utf8(h))).slice(2);
  return "0x" + [...h].map((c, i) => (parseInt(hash[i], 16) >= 8 ? c.toUpperCase() : c)).join("");
}

export function address(key) {
  return toChecksum(bytesToHex(keccak256(publicKey(key)).slice(12)));
}

// RFC 6979 (HMAC-SHA256) deterministic k for a 32-byte digest
function* nonces(d, digest) {
  const x = bigToBytes(d), h1 = bigToBytes(mod(bytesToBig(digest), N));
  let V = new Uint8Array(32).fill(1), K = new Uint8Array(32);
  K = hmacSha256(K, concat(V, [0], x, h1)); V = hmacSha256(K, V);
  K = hmacSha256(K, concat(V, [1], x, h1)); V = hmacSha256(K, V);
  for (;;) {
    V = hmacSha256(K, V);
    const k = bytesToBig(V);
    if (k > 0n && k < N) yield k;
    K = hmacSha256(K, concat(V, [0])); V = hmacSha256(K, V);
  }
}

// sign a 32-byte digest: 65 bytes r ‖ s ‖ v, low s, v in {27, 28} (as eth-account signs)
export function signDigest(digest, key) {
  if (digest.length !== 32) throw new Error("digest must be 32 bytes");
  const d = scalar(key), z = bytesToBig(digest);
  for (const k of nonces(d, digest)) {
    const [x, y] = affine(multiply(k));
    const r = mod(x, N);
    if (r === 0n) continue;
    let s = mod(inv(k, N) * (z + r * d), N);
    if (s === 0n) continue;
    let rec = Number(y & 1n) | (x >= N ? 2 : 0);
    if (s > N / 2n) { s = N - s; rec ^= 1; }
    return concat(bigToBytes(r), bigToBytes(s), [27 + rec]);
  }
}

export function randomKey() {
  for (;;) {
    const b = crypto.getRandomValues(new Uint8Array(32));
    const d = bytesToBig(b);
    if (d > 0n && d < N) return bytesToHex(b);
  }
}
