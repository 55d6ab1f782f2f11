"""`optrollup guardians propose | sign | submit | execute`: a guardian action as people run it.

One person proposes an action and writes it to a file; each guardian signs the file with their
own key (an encrypted keystore, or a key in a hardware security module: `--keystore pkcs11:...`),
offline if they like, appending their signature; anyone submits it to the Rollup once enough
guardians have signed:

    optrollup guardians propose --action pause --l1-rpc URL --rollup ADDR --out pause.json
    optrollup guardians sign pause.json --keystore guardian1.json --password-file pw
    optrollup guardians sign pause.json --keystore 'pkcs11:token=g2;object=guardian?pin-source=file:/run/pin'
    optrollup guardians submit pause.json --l1-rpc URL --keystore relayer.json

The proposal file (JSON, `kind` "optrollup.guardian-action", `version` 1) carries the action,
the L1 chain id, the Rollup, the EIP-712 message (numbers as decimal strings), the full typed
data (`typedData`, eth_signTypedData_v4 shape, for any other EIP-712 signer), its digest, the
guardian set and threshold read at proposal time, and `signatures` [{signer, signature}]. The
digest and signature rules are sequencer.l1.guardians' (domain "optrollup.guardians" v2, 65-byte
r ‖ s ‖ v, low s, sorted by signer when submitted). Every command checks every signature it
reads (it must recover to the signer it names, with a low s), and `sign` prints what is signed.

Actions: `reject --batch N` (drop batch N and every later one; the batch's lastHeaderHash is
read from L1), `pause`, `unpause`, `rotate --poster A --guardians A,B,C --threshold M`
(`submit` approves it; `execute` applies it once the Rollup's rotation delay has passed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data

from sequencer.errors import InvalidRequest
from sequencer.keys import SECP256K1_N
from sequencer.l1.abi import checksum_address
from sequencer.l1.guardians import (
    DEFAULT_LIFETIME,
    GUARDIAN_TYPES,
    reject_message,
    rotate_message,
    sign_action,
    typed_data,
)

__all__ = ["ACTIONS", "GuardianActionError", "action_digest", "load_proposal", "propose", "register",
           "sign_proposal", "submit_args", "valid_signatures"]

KIND = "optrollup.guardian-action"
VERSION = 1
ACTIONS = {"reject": "Reject", "pause": "Pause", "unpause": "Unpause", "rotate": "Rotate"}
CONTRACT_FN = {"reject": "reject", "pause": "pause", "unpause": "unpause", "rotate": "approveRotation"}


class GuardianActionError(InvalidRequest):
    """A proposal file that is malformed, does not match its digest, or cannot be submitted."""

    code = "bad_proposal"


# -- messages as JSON -------------------------------------------------------------------------------

def _to_json(typ: str, value: Any) -> Any:
    if typ.endswith("[]"):
        return [_to_json(typ[:-2], v) for v in value]
    if typ.startswith("uint"):
        return str(int(value))
    if typ.startswith("bytes"):
        return "0x" + bytes(value).hex()
    if typ == "address":
        return checksum_address(value)
    return value


def _from_json(typ: str, value: Any, name: str) -> Any:
    try:
        if typ.endswith("[]"):
            if not isinstance(value, list):
                raise ValueError("not a list")
            return [_from_json(typ[:-2], v, name) for v in value]
        if typ.startswith("uint"):
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise ValueError("not a number")
            n = int(value)
            if n < 0 or n >= 2**256:
                raise ValueError("out of range")
            return n
        if typ == "bytes32":
            raw = bytes.fromhex(str(value).removeprefix("0x"))
            if len(raw) != 32:
                raise ValueError("not 32 bytes")
            return raw
        if typ == "address":
            return checksum_address(str(value))
    except (ValueError, TypeError) as exc:
        raise GuardianActionError(f"message field {name} ({typ}) = {value!r}: {exc}") from None
    raise GuardianActionError(f"message field {name}: unsupported type {typ}")


def message_json(primary: str, message: dict[str, Any]) -> dict[str, Any]:
    return {f["name"]: _to_json(f["type"], message[f["name"]]) for f in GUARDIAN_TYPES[primary]}


def message_from_json(primary: str, raw: Any) -> dict[str, Any]:
    fields = GUARDIAN_TYPES[primary]
    if not isinstance(raw, dict) or set(raw) != {f["name"] for f in fields}:
        raise GuardianActionError(f"the {primary} message must have exactly the fields "
                                  f"{', '.join(f['name'] for f in fields)}")
    return {f["name"]: _from_json(f["type"], raw[f["name"]], f["name"]) for f in fields}


def _typed_json(full: dict[str, Any]) -> dict[str, Any]:
    """The typed data with JSON-safe values (bytes as 0x hex)."""
    def conv(v: Any) -> Any:
        if isinstance(v, (bytes, bytearray)):
            return "0x" + bytes(v).hex()
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v
    return conv(full)


def action_digest(l1_chain_id: int, rollup: str, primary: str, message: dict[str, Any]) -> bytes:
    """The EIP-712 digest the guardians sign (what Rollup.guardianDigest(structHash) gives)."""
    return bytes(_hash_eip191_message(encode_typed_data(full_message=typed_data(l1_chain_id, rollup, primary,
                                                                                message))))


# -- proposals ----------------------------------------------------------------------------------

def propose(rollup: Any, action: str, *, batch: int | None = None, poster: str | None = None,
            guardians: list[str] | None = None, threshold: int | None = None,
            lifetime: int = DEFAULT_LIFETIME, deadline: int | None = None) -> dict[str, Any]:
    """A new proposal (no signatures) for the Rollup contract `rollup` (a bound Contract):
    reads the chain id, the guardian set and threshold, the L1 time (deadline = L1 time +
    `lifetime` unless `deadline` is given) and, for reject, the batch's lastHeaderHash."""
    if action not in ACTIONS:
        raise InvalidRequest(f"unknown action {action!r} (one of {', '.join(ACTIONS)})", code="invalid_argument")
    client = rollup.client
    if deadline is None:
        deadline = client.get_block_timestamp() + lifetime
    primary = ACTIONS[action]
    if action == "reject":
        if batch is None:
            raise InvalidRequest("reject needs --batch N", code="missing_option")
        count = rollup.call("batchCount")
        if not 0 <= batch < count:
            raise InvalidRequest(f"batch {batch} is not live on the Rollup ({count} batches)", code="unknown_batch")
        last_header = bytes(rollup.call("getBatch", batch)["lastHeaderHash"])
        message = reject_message(batch, last_header, deadline)
    elif action == "rotate":
        if poster is None or not guardians or threshold is None:
            raise InvalidRequest("rotate needs --poster, --guardians and --threshold", code="missing_option")
        if not 0 < threshold <= len(guardians):
            raise InvalidRequest(f"threshold {threshold} of {len(guardians)} guardians", code="invalid_argument")
        message = rotate_message(poster, guardians, threshold, deadline)
    else:
        message = {"deadline": deadline}
    chain_id = client.chain_id
    full = typed_data(chain_id, rollup.address, primary, message)
    return {
        "kind": KIND, "version": VERSION, "action": action, "l1ChainId": chain_id, "rollup": rollup.address,
        "primaryType": primary, "message": message_json(primary, message),
        "digest": "0x" + action_digest(chain_id, rollup.address, primary, message).hex(),
        "guardians": [checksum_address(g) for g in rollup.call("guardians")],
        "threshold": int(rollup.call("guardianThreshold")),
        "typedData": _typed_json(full),
        "signatures": [],
    }


def load_proposal(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The proposal in `path`, checked: its fields, its digest (recomputed), every signature."""
    try:
        p = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise GuardianActionError(f"cannot read proposal {path}: {exc}") from None
    check_proposal(p)
    return p


def check_proposal(p: Any) -> tuple[str, dict[str, Any], bytes]:
    """(primary type, decoded message, digest) of a well-formed proposal; GuardianActionError
    if anything is off (a digest that is not the message's, a bad signature)."""
    if not isinstance(p, dict) or p.get("kind") != KIND or p.get("version") != VERSION:
        raise GuardianActionError(f"not a guardian action proposal (kind {KIND!r}, version {VERSION})")
    action = p.get("action")
    if action not in ACTIONS or p.get("primaryType") != ACTIONS[action]:
        raise GuardianActionError(f"unknown action {action!r} / primaryType {p.get('primaryType')!r}")
    primary = ACTIONS[action]
    try:
        chain_id, rollup = int(p["l1ChainId"]), checksum_address(p["rollup"])
    except (KeyError, TypeError, ValueError) as exc:
        raise GuardianActionError(f"proposal lacks a valid l1ChainId / rollup: {exc}") from None
    message = message_from_json(primary, p.get("message"))
    digest = action_digest(chain_id, rollup, primary, message)
    if str(p.get("digest", "")).lower() != "0x" + digest.hex():
        raise GuardianActionError(f"the proposal's digest {p.get('digest')} is not the digest of its message "
                                  f"(0x{digest.hex()}): the file was altered")
    if not isinstance(p.get("signatures"), list):
        raise GuardianActionError("signatures must be a list")
    valid_signatures(p, digest)
    return primary, message, digest


def _recover(digest: bytes, sig: bytes) -> str | None:
    if len(sig) != 65 or sig[64] not in (27, 28):
        return None
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")
    if not (0 < r < SECP256K1_N and 0 < s <= SECP256K1_N // 2):  # the contracts refuse high s
        return None
    try:
        return Account._recover_hash(digest, signature=sig)
    except Exception:  # noqa: BLE001 - any undecodable signature is simply invalid
        return None


def valid_signatures(p: dict[str, Any], digest: bytes) -> dict[str, bytes]:
    """{signer: signature} of the proposal; GuardianActionError on a signature that does not
    recover to the signer it names, a high s, or a signer twice."""
    out: dict[str, bytes] = {}
    for i, entry in enumerate(p["signatures"]):
        try:
            signer = checksum_address(entry["signer"])
            sig = bytes.fromhex(str(entry["signature"]).removeprefix("0x"))
        except (KeyError, TypeError, ValueError) as exc:
            raise GuardianActionError(f"signature {i} is malformed: {exc}") from None
        got = _recover(digest, sig)
        if got is None or got != signer:
            raise GuardianActionError(f"signature {i} is not {signer}'s over this action (recovers to {got})",
                                      code="bad_signature")
        if signer in out:
            raise GuardianActionError(f"{signer} signed twice", code="duplicate_signer")
        out[signer] = sig
    return out


def describe(p: dict[str, Any]) -> str:
    """What the guardians sign, in words."""
    m, action = p["message"], p["action"]
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(m["deadline"])))
    what = {"reject": lambda: f"REJECT batch {m.get('batchIndex')} (last header {m.get('lastHeaderHash')}) and "
                              f"every later batch",
            "pause": lambda: "PAUSE the Rollup (batches, deposits, withdrawals)",
            "unpause": lambda: "UNPAUSE the Rollup",
            "rotate": lambda: f"ROTATE to poster {m.get('poster')}, guardians {', '.join(m.get('guardians', []))}, "
                              f"threshold {m.get('threshold')}"}[action]()
    return (f"{what}\n  on Rollup {p['rollup']} (L1 chain {p['l1ChainId']}), valid until {when}\n"
            f"  digest {p['digest']}; {len(p['signatures'])} of {p['threshold']} signatures")


def sign_proposal(p: dict[str, Any], key: Any) -> dict[str, Any]:
    """The proposal with `key`'s signature appended (any key of sequencer.keys.load_key, a key
    in a PKCS#11 token included). Refuses a key that is not a guardian (as of the proposal), or
    one that signed already."""
    primary, message, _ = check_proposal(p)
    if key.address not in p["guardians"]:
        raise GuardianActionError(f"{key.address} is not one of the Rollup's guardians "
                                  f"({', '.join(p['guardians'])})", code="not_guardian")
    if any(checksum_address(e["signer"]) == key.address for e in p["signatures"]):
        raise GuardianActionError(f"{key.address} has signed this proposal already", code="already_signed")
    [sig] = sign_action([key], int(p["l1ChainId"]), p["rollup"], primary, message)
    out = dict(p)
    out["signatures"] = [*p["signatures"], {"signer": key.address, "signature": "0x" + sig.hex()}]
    check_proposal(out)
    return out


def submit_args(p: dict[str, Any], guardians: list[str], threshold: int) -> tuple[str, list[Any]]:
    """(Rollup function, its arguments) for the proposal, with the signatures of current
    `guardians` sorted by signer; GuardianActionError `threshold_not_met` below `threshold`."""
    primary, message, digest = check_proposal(p)
    current = {checksum_address(g) for g in guardians}
    sigs = {s: v for s, v in valid_signatures(p, digest).items() if s in current}
    if len(sigs) < threshold:
        missing = sorted(current - set(sigs))
        raise GuardianActionError(f"{len(sigs)} of the {threshold} guardian signatures needed (still unsigned: "
                                  f"{', '.join(missing)})", code="threshold_not_met")
    ordered = [sigs[s] for s in sorted(sigs, key=lambda a: int(a, 16))]
    m = message
    if primary == "Reject":
        return "reject", [m["batchIndex"], m["lastHeaderHash"], m["deadline"], ordered]
    if primary == "Rotate":
        return "approveRotation", [m["poster"], m["guardians"], m["threshold"], m["deadline"], ordered]
    return CONTRACT_FN[p["action"]], [m["deadline"], ordered]


# -- the commands -------------------------------------------------------------------------------

def _write(path: str | os.PathLike[str], p: dict[str, Any]) -> None:
    dest = Path(path)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_text(json.dumps(p, indent=2) + "\n")
    os.replace(tmp, dest)


def _load_key(args: argparse.Namespace) -> Any:
    from sequencer.keys import load_key

    return load_key(args.keystore, password_file=args.password_file, password_env=args.password_env,
                    prompt="Keystore password: " if sys.stdin.isatty() else None)


def _rollup(client: Any, address: str) -> Any:
    from sequencer.l1.contracts import Contract

    return Contract.at(client, "Rollup", address)


def _propose(args: argparse.Namespace) -> int:
    from sequencer.l1.client import L1Client

    out = Path(args.out)
    if out.exists() and not args.force:
        raise InvalidRequest(f"{out} exists; not overwriting a proposal (--force to)", code="file_exists")
    guardians = [g.strip() for g in args.guardians.split(",") if g.strip()] if args.guardians else None
    with L1Client(args.l1_rpc) as client:
        p = propose(_rollup(client, args.rollup), args.action, batch=args.batch, poster=args.poster,
                    guardians=guardians, threshold=args.threshold, lifetime=args.lifetime,
                    deadline=args.deadline)
    _write(out, p)
    print(describe(p))
    print(f"proposal written to {out}; each guardian runs: optrollup guardians sign {out} --keystore KEY")
    return 0


def _sign(args: argparse.Namespace) -> int:
    p = load_proposal(args.file)
    if int(p["message"]["deadline"]) < time.time():
        raise GuardianActionError(f"this proposal expired at {p['message']['deadline']} (unix s); propose it "
                                  "again", code="proposal_expired")
    print(describe(p), file=sys.stderr)
    key = _load_key(args)
    try:
        signed = sign_proposal(p, key)
    finally:
        getattr(key, "close", lambda: None)()
    _write(args.file, signed)
    print(f"signed by {key.address}: {len(signed['signatures'])} of {p['threshold']} signatures")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from sequencer.l1.client import L1Client
    from sequencer.l1.txmanager import TxConfig, TxManager

    p = load_proposal(args.file)
    key = _load_key(args)
    with L1Client(args.l1_rpc) as client:
        if client.chain_id != int(p["l1ChainId"]):
            raise GuardianActionError(f"{args.l1_rpc} is L1 chain {client.chain_id}, the proposal is for chain "
                                      f"{p['l1ChainId']}", code="wrong_chain")
        rollup = _rollup(client, p["rollup"])
        now = client.get_block_timestamp()
        if int(p["message"]["deadline"]) < now:
            raise GuardianActionError(f"this proposal expired at {p['message']['deadline']} (L1 time {now})",
                                      code="proposal_expired")
        fn, fn_args = submit_args(p, rollup.call("guardians"), int(rollup.call("guardianThreshold")))
        txm = TxManager(client, key, TxConfig(label="guardian action sender", timeout=args.timeout))
        receipt = rollup.transact(fn, *fn_args, sender=txm, timeout=args.timeout)
    print(f"{p['action']} submitted: Rollup.{fn} in L1 tx {receipt.tx_hash} (block {receipt.block_number})")
    if p["action"] == "rotate":
        print(f"once the rotation delay has passed: optrollup guardians execute {args.file} --l1-rpc URL "
              "--keystore KEY")
    return 0


def _execute(args: argparse.Namespace) -> int:
    from sequencer.l1.client import L1Client
    from sequencer.l1.txmanager import TxConfig, TxManager

    p = load_proposal(args.file)
    if p["action"] != "rotate":
        raise GuardianActionError("only a rotation is executed after approval", code="not_a_rotation")
    m = p["message"]
    key = _load_key(args)
    with L1Client(args.l1_rpc) as client:
        rollup = _rollup(client, p["rollup"])
        txm = TxManager(client, key, TxConfig(label="rotation sender", timeout=args.timeout))
        receipt = rollup.transact("executeRotation", checksum_address(m["poster"]),
                                  [checksum_address(g) for g in m["guardians"]], int(m["threshold"]),
                                  sender=txm, timeout=args.timeout)
    print(f"rotation applied in L1 tx {receipt.tx_hash}")
    return 0


def _key_args(p: argparse.ArgumentParser, what: str) -> None:
    from sequencer.keys import PASSWORD_ENV, refuse_raw_key_option

    p.add_argument("--keystore", required=True, metavar="KEY",
                   help=f"{what}: an encrypted JSON keystore, or a pkcs11: URI (a key in an HSM)")
    refuse_raw_key_option(p)
    p.add_argument("--password-file", metavar="FILE",
                   help=f"keystore password (or token PIN): the first line of FILE (else --password-env, "
                        f"else ${PASSWORD_ENV}, else prompted at a terminal)")
    p.add_argument("--password-env", metavar="NAME", help="the password (or PIN) from the variable NAME")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `guardians propose | sign | submit | execute` to the `optrollup` parser."""
    g = sub.add_parser("guardians", help="guardian actions (reject, pause, unpause, rotate): propose, "
                                         "sign one by one, submit")
    gs = g.add_subparsers(dest="guardians_command", required=True, metavar="ACTION")
    pr = gs.add_parser("propose", help="write a guardian action to a file for the guardians to sign")
    pr.add_argument("--action", required=True, choices=sorted(ACTIONS))
    pr.add_argument("--l1-rpc", required=True, metavar="URL")
    pr.add_argument("--rollup", required=True, metavar="ADDRESS")
    pr.add_argument("--out", required=True, metavar="FILE")
    pr.add_argument("--batch", type=int, metavar="N", help="reject: the first batch to drop")
    pr.add_argument("--poster", metavar="ADDRESS", help="rotate: the new poster")
    pr.add_argument("--guardians", metavar="A,B,...", help="rotate: the new guardian set")
    pr.add_argument("--threshold", type=int, metavar="M", help="rotate: the new threshold")
    pr.add_argument("--lifetime", type=int, default=DEFAULT_LIFETIME, metavar="SECONDS",
                    help=f"the signed action is valid for this long from now, L1 time (default {DEFAULT_LIFETIME})")
    pr.add_argument("--deadline", type=int, metavar="UNIX", help="instead of --lifetime: the last valid L1 time")
    pr.add_argument("--force", action="store_true", help="overwrite --out")
    pr.set_defaults(func=_propose)
    sg = gs.add_parser("sign", help="append this guardian's signature to a proposal file (offline)")
    sg.add_argument("file")
    _key_args(sg, "this guardian's key")
    sg.set_defaults(func=_sign)
    sb = gs.add_parser("submit", help="send a proposal signed by enough guardians to the Rollup")
    sb.add_argument("file")
    sb.add_argument("--l1-rpc", required=True, metavar="URL")
    _key_args(sb, "the key that sends (and pays for) the transaction; anyone's")
    sb.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS")
    sb.set_defaults(func=_submit)
    ex = gs.add_parser("execute", help="apply an approved rotation once the rotation delay has passed")
    ex.add_argument("file")
    ex.add_argument("--l1-rpc", required=True, metavar="URL")
    _key_args(ex, "the key that sends the transaction; anyone's")
    ex.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS")
    ex.set_defaults(func=_execute)
