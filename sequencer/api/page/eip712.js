// EIP-712 typed-data digests and EIP-191 personal messages (design.md, "Signatures"), over the
// domain and types the node publishes in GET /v1/info. Values as the JSON API writes them:
// integers as numbers or decimal strings, addresses and bytes as 0x hex.
import { bigToBytes, bytesToHex, concat, hexToBytes, keccak256, signDigest, utf8 } from "./crypto.js";

const DOMAIN_FIELDS = [["name", "string"], ["version", "string"], ["chainId", "uint256"],
  ["verifyingContract", "address"], ["salt", "bytes32"]];

function deps(primary, types, found = new Set()) {
  if (found.has(primary) || !types[primary]) return found;
  found.add(primary);
  for (const f of types[primary]) deps(f.type.replace(/\[\d*\]$/, ""), types, found);
  return found;
}

export function encodeType(primary, types) {
  const [, ...rest] = [...deps(primary, types)];
  return [primary, ...rest.sort()]
    .map((t) => `${t}(${types[t].map((f) => `${f.type} ${f.name}`).join(",")})`).join("");
}

export function typeHash(primary, types) {
  return keccak256(utf8(encodeType(primary, types)));
}

function encodeValue(type, value, types) {
  if (types[type]) return hashStruct(type, value, types);
  const arr = type.match(/^(.*)\[\d*\]$/);
  if (arr) return keccak256(concat(...value.map((v) => encodeValue(arr[1], v, types))));
  if (type === "string") return keccak256(utf8(value));
  if (type === "bytes") return keccak256(hexToBytes(value));
  if (type === "bool") return bigToBytes(value === true || value === "true" ? 1n : 0n);
  if (type === "address") return bigToBytes(BigInt(value));
  const fixed = type.match(/^bytes(\d+)$/);
  if (fixed) {
    const b = hexToBytes(value), out = new Uint8Array(32);
    if (b.length !== Number(fixed[1])) throw new Error(`${type} needs ${fixed[1]} bytes`);
    out.set(b);
    return out;
  }
  const int = type.match(/^(u?)int(\d*)$/);
  if (int) {
    const n = BigInt(value);
    return bigToBytes(n < 0n ? (1n << 256n) + n : n);
  }
  throw new Error(`unsupported EIP-712 type ${type}`);
}

export function hashStruct(primary, data, types) {
  return keccak256(concat(typeHash(primary, types),
    ...types[primary].map((f) => encodeValue(f.type, data[f.name], types))));
}

export function domainSeparator(domain, types = {}) {
  const fields = types.EIP712Domain ||
    DOMAIN_FIELDS.filter(([n]) => domain[n] !== undefined).map(([name, type]) => ({ name, type }));
  return hashStruct("EIP712Domain", domain, { ...types, EIP712Domain: fields });
}

// keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(message))
export function typedDigest(domain, types, primary, message) {
  return keccak256(concat([0x19, 0x01], domainSeparator(domain, types), hashStruct(primary, message, types)));
}

// EIP-191 version 0x45 (personal_sign)
export function personalDigest(text) {
  const m = utf8(text);
  return keccak256(concat(utf8(`\x19Ethereum Signed Message:\n${m.length}`), m));
}

export const signTyped = (key, domain, types, primary, message) =>
  bytesToHex(signDigest(typedDigest(domain, types, primary, message), key));

export const signPersonal = (key, text) => bytesToHex(signDigest(personalDigest(text), key));
