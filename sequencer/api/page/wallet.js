// Signing in: a private key pasted into the page (kept in this module's memory only, never
// sent, gone on reload), or a session key the page makes, registers with the account's key
// (POST /v1/session_keys, a signed SessionKey) and keeps instead of the account's key.
// Private reads carry the auth headers of sequencer/api/auth.py: personal_sign of
// "optrollup auth <account> <timestamp>" by the account or one of its live session keys.
import { get, info, post } from "./api.js";
import { address, randomKey, toChecksum } from "./crypto.js";
import { signPersonal, signTyped } from "./eip712.js";

let session = null; // {account, signer, key, kind: "account" | "session", expiry}
const listeners = new Set();
let clockOffset = null; // node clock − local clock (s), from the stream's heartbeats or /v1/health

export function onChange(fn) { listeners.add(fn); return () => listeners.delete(fn); }
function changed() { for (const fn of listeners) fn(session); }

export function current() {
  return session && { account: session.account, signer: session.signer, kind: session.kind, expiry: session.expiry };
}

export function setNodeTime(t) { clockOffset = t - Date.now() / 1000; }
export function now() { return Math.floor(Date.now() / 1000 + (clockOffset ?? 0)); }

// The node checks timestamps against its own clock (auth: ±30 s): until a heartbeat told us
// its time, ask its block time.
export async function syncedNow() {
  if (clockOffset === null) {
    try { setNodeTime((await get("/health")).blockTime); } catch (e) { console.warn("clock", e.message); }
  }
  return now();
}

export function normalizeKey(key) {
  const k = key.trim();
  const hex = k.startsWith("0x") ? k : "0x" + k;
  if (!/^0x[0-9a-fA-F]{64}$/.test(hex)) throw new Error("a private key is 32 bytes of hex (64 hex digits)");
  address(hex); // throws when out of range
  return hex;
}

// Sign in with a key: the account's own key, or (with `account`) a live session key of it.
export function signIn(key, account) {
  const k = normalizeKey(key), signer = address(k);
  const acct = account ? toChecksum(account.trim()) : signer;
  session = { account: acct, signer, key: k, kind: acct === signer ? "account" : "session", expiry: null };
  changed();
  return current();
}

// Make a fresh key, register it as a session key of the account whose key is given (valid for
// `ttl` seconds), and keep only the new key. The account's key is used once, here.
export async function signInWithSessionKey(accountKey, ttl = 86400) {
  const main = normalizeKey(accountKey), account = address(main);
  const key = randomKey(), signer = address(key);
  const sessionKey = { account, key: signer, expiry: String((await syncedNow()) + ttl) };
  const { eip712 } = await info();
  const signature = signTyped(main, eip712.domain, eip712.types, "SessionKey", sessionKey);
  await post("/session_keys", { sessionKey, signature });
  session = { account, signer, key, kind: "session", expiry: Number(sessionKey.expiry) };
  changed();
  return current();
}

export function signOut() { session = null; changed(); }

function need() {
  if (!session) throw new Error("not signed in");
  return session;
}

// the three auth values (headers of a private read; the `auth` of a stream subscription)
export async function auth() {
  const s = need(), timestamp = await syncedNow();
  return { account: s.account, timestamp: String(timestamp),
    signature: signPersonal(s.key, `optrollup auth ${s.account} ${timestamp}`) };
}

export async function authHeaders() {
  const a = await auth();
  return { "x-optrollup-account": a.account, "x-optrollup-timestamp": a.timestamp, "x-optrollup-signature": a.signature };
}

// Sign `message` as EIP-712 `primary` (the node's domain and types) and POST it as
// {"<lowerCamel primary>": message, "signature"} (design.md, signed writes).
export async function signAndPost(path, primary, message) {
  const s = need();
  const { eip712 } = await info();
  const signature = signTyped(s.key, eip712.domain, eip712.types, primary, message);
  return post(path, { [primary[0].toLowerCase() + primary.slice(1)]: message, signature });
}

// an order nonce: unique enough per account (a digest is accepted once), < 2^63
export function orderNonce() {
  const r = crypto.getRandomValues(new Uint32Array(1))[0] % 1000;
  return String(BigInt(Date.now()) * 1000n + BigInt(r));
}
