"""secp256k1 keys in a PKCS#11 token (a hardware security module, or SoftHSM2 for tests and the
devnet): the key is generated in the token and never leaves it (design.md, "Keys and custody";
the how-to is docs/keys.md).

A key is named by an RFC 7512 URI, e.g.

    pkcs11:token=optrollup;object=poster?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/optrollup/pin

- path attributes: `token` (label), `serial`, `slot-id` pick the token; `object` (label) and/or
  `id` (percent-encoded bytes) pick the key; `type` may only be `private` (or absent);
- query attributes: `module-path` (or `module-name`, e.g. `softhsm2`; else $OPTROLLUP_PKCS11_MODULE,
  else SoftHSM2 where Debian installs it); `pin-value` or `pin-source` (`file:PATH` or a path: the
  file's first line). Without either, the PIN follows the password rule of sequencer.keys.

The recipe: EC params `06052B8104000A` (secp256k1); `CKM_ECDSA` over the 32-byte digest returns
r ‖ s; s is normalised to the lower half; the recovery id is the one that recovers the token's
public key, read from `CKA_EC_POINT` (a DER octet string around 04 ‖ X ‖ Y); the address is the
last 20 bytes of keccak(X ‖ Y).

`Pkcs11Key` is an eth-account `BaseAccount`: `sign_digest`, `unsafe_sign_hash`, `sign_message`,
`sign_typed_data` and `sign_transaction` (any transaction type eth-account knows: the unsigned
transaction's hash is signed in the token). One logged-in session per key, kept open; a session
the token dropped (restart, unplugged and back) is reopened once. Signing is serialised per key.

`init_token` / `generate_key` / `list_keys` back `optrollup keys hsm-init | hsm-new | hsm-list`.

python-pkcs11 is imported lazily (only PKCS#11 keys need it); every failure is a
`sequencer.keys.KeyLoadError` with a stable code (`hsm_module_missing`, `hsm_token_missing`,
`hsm_key_missing`, `hsm_bad_pin`, `hsm_pin_locked`, `invalid_pkcs11_uri`, `pkcs11_unavailable`,
`hsm_error`, ...).
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import os
import sys
import sysconfig
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote, unquote, unquote_to_bytes

from eth_account.datastructures import SignedMessage, SignedTransaction
from eth_account.messages import (
    SignableMessage,
    _hash_eip191_message,
    encode_typed_data,
)
from eth_account.signers.base import BaseAccount
from eth_keys.datatypes import Signature
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes

from sequencer.keys import (
    PASSWORD_ENV,
    SECP256K1_N,
    HsmBadPin,
    HsmError,
    HsmKeyExists,
    HsmKeyMissing,
    HsmModuleMissing,
    HsmPinLocked,
    HsmTokenMissing,
    InvalidPkcs11Uri,
    KeyNotExtractable,
    PasswordMissing,
    Pkcs11Unavailable,
    low_s_signature,
    read_password,
)

__all__ = [
    "MODULE_ENV", "SECP256K1_PARAMS", "KeyInfo", "Pkcs11Key", "Pkcs11Uri", "SoftHsmDir", "find_module",
    "generate_key", "init_token", "list_keys", "open_key", "register", "register_keys_commands",
    "softhsm_dir",
]

#: DER of the OID 1.3.132.0.10 (secp256k1): the CKA_EC_PARAMS of every key we make or accept
SECP256K1_PARAMS = bytes.fromhex("06052B8104000A")
MODULE_ENV = "OPTROLLUP_PKCS11_MODULE"
DEFAULT_MODULE_NAME = "softhsm2"

_PATH_ATTRS = {"token", "manufacturer", "serial", "model", "library-manufacturer", "library-description",
               "library-version", "object", "type", "id", "slot-description", "slot-manufacturer",
               "slot-id"}
_QUERY_ATTRS = {"pin-source", "pin-value", "module-name", "module-path"}
# RFC 7512 pk11-pchar / pk11-qchar: what may stay unescaped besides the unreserved characters
_PATH_SAFE = ":[]@!$'()*+,=&"
_QUERY_SAFE = ":[]@!$'()*+,;/?|"


# -- URIs (RFC 7512) -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pkcs11Uri:
    """The parts of a `pkcs11:` URI that name a key, its token, module and PIN."""

    token: str | None = None
    object: str | None = None
    id: bytes | None = None
    serial: str | None = None
    slot_id: int | None = None
    type: str | None = None
    module_path: str | None = None
    module_name: str | None = None
    pin_source: str | None = None
    pin_value: str | None = None
    other: dict[str, str] = field(default_factory=dict)  # attributes we do not use (kept for str())

    @classmethod
    def parse(cls, text: str) -> Pkcs11Uri:
        """The URI's parts; InvalidPkcs11Uri if `text` is not a well-formed pkcs11: URI of RFC
        7512's attributes (or x- ones). `require_key` checks it names a token and a key."""
        if not text.lower().startswith("pkcs11:"):
            raise InvalidPkcs11Uri(f"{text!r} is not a pkcs11: URI")
        body = text[len("pkcs11:"):]
        path, _, query = body.partition("?")
        seen: dict[str, str] = {}

        def parts(s: str, sep: str, known: set[str]) -> None:
            for part in filter(None, s.split(sep)):
                name, eq, value = part.partition("=")
                name = name.strip().lower()
                if not eq or not name:
                    raise InvalidPkcs11Uri(f"pkcs11 URI attribute {part!r} is not name=value")
                if name not in known and not name.startswith("x-"):
                    raise InvalidPkcs11Uri(f"pkcs11 URI: unknown attribute {name!r} (RFC 7512 has "
                                           f"{', '.join(sorted(known))})")
                if name in seen:
                    raise InvalidPkcs11Uri(f"pkcs11 URI: attribute {name!r} given twice")
                seen[name] = value

        parts(path, ";", _PATH_ATTRS)
        parts(query, "&", _QUERY_ATTRS)

        def text_of(name: str) -> str | None:
            v = seen.pop(name, None)
            return None if v is None else unquote(v, errors="strict")

        try:
            ident = seen.pop("id", None)
            key_id = None if ident is None else unquote_to_bytes(ident)
            slot = text_of("slot-id")
            uri = cls(token=text_of("token"), object=text_of("object"), id=key_id,
                      serial=text_of("serial"), slot_id=None if slot is None else int(slot),
                      type=text_of("type"), module_path=text_of("module-path"),
                      module_name=text_of("module-name"), pin_source=text_of("pin-source"),
                      pin_value=text_of("pin-value"),
                      other={k: unquote(v) for k, v in seen.items()})
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidPkcs11Uri(f"pkcs11 URI {redact(text)}: {exc}") from None
        if uri.type not in (None, "private"):
            raise InvalidPkcs11Uri(f"pkcs11 URI names a {uri.type!r} object; a signing key is "
                                   f"type=private (or leave type out)")
        if uri.pin_source is not None and uri.pin_value is not None:
            raise InvalidPkcs11Uri("pkcs11 URI: give pin-source or pin-value, not both")
        return uri

    def require_key(self) -> None:
        """InvalidPkcs11Uri unless the URI names a token and a key in it."""
        if self.token is None and self.serial is None and self.slot_id is None:
            raise InvalidPkcs11Uri(f"pkcs11 URI {self} names no token: add token=LABEL")
        if self.object is None and not self.id:
            raise InvalidPkcs11Uri(f"pkcs11 URI {self} names no key: add object=LABEL (or id=)")

    def __str__(self) -> str:
        """The URI (a pin-value shown as ***)."""
        return self.format(redact_pin=True)

    def format(self, *, redact_pin: bool = False) -> str:
        path: list[str] = []
        for name, value in (("token", self.token), ("serial", self.serial),
                            ("slot-id", None if self.slot_id is None else str(self.slot_id)),
                            ("object", self.object), ("type", self.type)):
            if value is not None:
                path.append(f"{name}={quote(value, safe=_PATH_SAFE)}")
        if self.id:
            path.append("id=" + "".join(f"%{b:02X}" for b in self.id))
        path += [f"{k}={quote(v, safe=_PATH_SAFE)}" for k, v in self.other.items()]
        query = [f"{name}={quote(value, safe=_QUERY_SAFE)}" for name, value in (
            ("module-path", self.module_path), ("module-name", self.module_name),
            ("pin-source", self.pin_source),
            ("pin-value", "***" if redact_pin and self.pin_value else self.pin_value))
            if value is not None]
        return "pkcs11:" + ";".join(path) + ("?" + "&".join(query) if query else "")


def redact(uri: str) -> str:
    """`uri` with the value of a pin-value attribute replaced by ***, for messages and logs."""
    head, sep, query = uri.partition("?")
    if not sep:
        return uri
    out = [("pin-value=***" if p.lower().startswith("pin-value=") else p) for p in query.split("&")]
    return head + "?" + "&".join(out)


# -- modules and the library ----------------------------------------------------------------------

def _module_candidates(name: str) -> list[str]:
    lib = f"lib{name}.so" if not name.endswith((".so", ".dylib", ".dll")) else name
    short = name.removesuffix("2") if name.startswith("softhsm") else name  # .../softhsm/libsofthsm2.so
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = [f"/usr/lib/{short}", *([f"/usr/lib/{arch}/{short}", f"/usr/lib/{arch}"] if arch else []),
            f"/usr/lib64/{short}", "/usr/lib64", f"/usr/local/lib/{short}", "/usr/local/lib",
            f"/opt/homebrew/lib/{short}", "/usr/lib"]
    out = [os.path.join(d, lib) for d in dirs]
    out += sorted(glob.glob(f"/usr/lib/*/{short}/{lib}")) + sorted(glob.glob(f"/usr/lib/*/{lib}"))
    if sys.platform == "darwin":
        out += [p.removesuffix(".so") + ".dylib" for p in out]
    return out


def find_module(module_path: str | None = None, module_name: str | None = None,
                environ: Mapping[str, str] | None = None) -> str:
    """The PKCS#11 module to load: `module_path` if given (it must exist), else the library
    called `module_name` (RFC 7512: e.g. "softhsm2"), else $OPTROLLUP_PKCS11_MODULE, else
    SoftHSM2 where Debian (/usr/lib/softhsm or the multiarch directory) or others put it."""
    env = os.environ if environ is None else environ
    if module_path is None and module_name is None and env.get(MODULE_ENV):
        module_path = env[MODULE_ENV]
    if module_path is not None:
        if not os.path.isfile(module_path):
            raise HsmModuleMissing(f"PKCS#11 module {module_path} does not exist (for SoftHSM: "
                                   f"apt-get install softhsm2)")
        return module_path
    name = module_name or DEFAULT_MODULE_NAME
    for cand in _module_candidates(name):
        if os.path.isfile(cand):
            return cand
    raise HsmModuleMissing(f"no PKCS#11 module {name!r} found (looked in /usr/lib/softhsm, the "
                           f"multiarch directories, /usr/local/lib): give module-path= in the URI, "
                           f"--module, or ${MODULE_ENV}; for SoftHSM: apt-get install softhsm2")


def _pkcs11() -> Any:
    try:
        import pkcs11
    except ImportError:
        raise Pkcs11Unavailable("PKCS#11 keys need python-pkcs11 (pip install python-pkcs11; "
                                "scripts/bootstrap.sh installs it)") from None
    return pkcs11


_LIB_LOCK = threading.RLock()
_LIB_CONF: dict[str, str | None] = {}  # module -> SOFTHSM2_CONF it was initialised with


def _library(module: str) -> Any:
    """The loaded, initialised module (one per process and module file). SoftHSM reads
    SOFTHSM2_CONF when initialised: if it changed since, the module is initialised again (a
    test or a devnet that points it at another token directory)."""
    pkcs11 = _pkcs11()
    real = os.path.realpath(module)
    if not os.path.isfile(real):
        raise HsmModuleMissing(f"PKCS#11 module {module} does not exist")
    with _LIB_LOCK:
        try:
            lib = pkcs11.lib(real)
        except pkcs11.PKCS11Error as exc:
            raise HsmModuleMissing(f"cannot load PKCS#11 module {module}: {exc}") from None
        conf = os.environ.get("SOFTHSM2_CONF")
        if real in _LIB_CONF and _LIB_CONF[real] != conf:
            lib.reinitialize()  # every session ends: the keys of this module reopen on use
            for ident in [i for i in _LOGINS if i[0] == real]:
                del _LOGINS[ident]
        _LIB_CONF[real] = conf
        return lib


def _token_labels(lib: Any) -> list[str]:
    out = []
    for slot in lib.get_slots(token_present=True):
        try:
            label = slot.get_token().label
        except Exception:  # noqa: BLE001, S112 - a slot that cannot say is left out of a message
            continue
        if label:
            out.append(label)
    return out


def _find_token(lib: Any, uri: Pkcs11Uri, module: str) -> Any:
    pkcs11 = _pkcs11()
    try:
        if uri.slot_id is not None:
            for slot in lib.get_slots(token_present=True):
                if slot.slot_id == uri.slot_id:
                    tok = slot.get_token()
                    if uri.token is None or tok.label == uri.token:
                        return tok
            raise pkcs11.NoSuchToken(uri.slot_id)
        kw: dict[str, Any] = {}
        if uri.token is not None:
            kw["token_label"] = uri.token
        if uri.serial is not None:
            kw["token_serial"] = uri.serial.encode()
        return lib.get_token(**kw)
    except pkcs11.NoSuchToken:
        have = _token_labels(lib)
        what = (f"token {uri.token!r}" if uri.token is not None else
                f"token with serial {uri.serial}" if uri.serial is not None else f"slot {uri.slot_id}")
        raise HsmTokenMissing(f"no {what} in PKCS#11 module {module} (tokens there: "
                              f"{', '.join(repr(t) for t in have) or 'none'}; SOFTHSM2_CONF="
                              f"{os.environ.get('SOFTHSM2_CONF', 'unset')})") from None
    except pkcs11.MultipleTokensReturned:
        raise HsmError(f"more than one token matches {uri}: add serial= to the URI",
                       code="hsm_token_ambiguous") from None
    except pkcs11.PKCS11Error as exc:
        raise _hsm_error(exc, f"looking for the token of {uri}") from None


def _hsm_error(exc: Exception, doing: str) -> HsmError:
    return HsmError(f"PKCS#11 error {type(exc).__name__} {doing}{': ' + str(exc) if str(exc) else ''}")


def _login(token: Any, pin: str, *, rw: bool = False, so: bool = False) -> Any:
    pkcs11 = _pkcs11()
    who = "security officer PIN" if so else "PIN"
    try:
        try:
            return token.open(rw=rw, **({"so_pin": pin} if so else {"user_pin": pin}))
        except pkcs11.TokenWriteProtected:
            if not rw or so:
                raise
            return token.open(rw=False, user_pin=pin)  # a read-only token still signs
    except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange):
        raise HsmBadPin(f"token {token.label!r} refused the {who}") from None
    except pkcs11.PinLocked:
        raise HsmPinLocked(f"token {token.label!r} has locked its {who} after too many wrong ones") from None
    except pkcs11.UserPinNotInitialized:
        raise HsmError(f"token {token.label!r} has no user PIN yet (optrollup keys hsm-init sets it)",
                       code="hsm_pin_not_initialized") from None
    except pkcs11.PKCS11Error as exc:
        raise _hsm_error(exc, f"logging in to token {token.label!r}") from None


class _TokenLogin:
    """The one logged-in session of this process on a token. PKCS#11 keeps the login state per
    token and application: a second C_Login fails (CKR_USER_ALREADY_LOGGED_IN) and a C_Logout,
    which closing a logged-in session does, ends it for every session. So every key of a token
    shares this session; it is closed (logged out) when the last user releases it. A PIN that
    differs from the one the token accepted is refused like a wrong one."""

    def __init__(self, ident: tuple[Any, ...], module: str, uri: Pkcs11Uri, pin: str) -> None:
        self.ident, self.module, self.uri, self.pin = ident, module, uri, pin
        self.users = 0
        self.generation = 0  # bumped whenever the session is renewed (object handles go stale)
        self.lock = threading.RLock()  # one operation at a time on the session
        self.session: Any = None
        self.token: Any = None

    def open(self) -> None:
        self.token = _find_token(_library(self.module), self.uri, self.module)
        self.session = _login(self.token, self.pin, rw=True)
        self.generation += 1

    def renew(self, generation: int) -> None:
        """Reopen the session (the token dropped it) unless another user did since `generation`."""
        with self.lock:
            if generation != self.generation:
                return
            try:
                self.session.close()
            except Exception:  # noqa: BLE001, S110 - the session is gone already
                pass
            self.open()


_LOGINS: dict[tuple[Any, ...], _TokenLogin] = {}


def _acquire_login(module: str, uri: Pkcs11Uri, pin: str) -> _TokenLogin:
    import hmac

    with _LIB_LOCK:
        token = _find_token(_library(module), uri, module)
        ident = (os.path.realpath(module), token.slot.slot_id, token.label, bytes(token.serial or b""))
        login = _LOGINS.get(ident)
        if login is not None:
            if not hmac.compare_digest(login.pin.encode(), pin.encode()):
                raise HsmBadPin(f"token {token.label!r} refused the PIN (it is logged in with another one "
                                f"in this process)")
        else:
            login = _TokenLogin(ident, module, Pkcs11Uri(token=token.label, serial=uri.serial,
                                                         slot_id=uri.slot_id), pin)
            login.open()
            _LOGINS[ident] = login
        login.users += 1
        return login


def _release_login(login: _TokenLogin) -> None:
    with _LIB_LOCK:
        login.users -= 1
        if login.users > 0:
            return
        if _LOGINS.get(login.ident) is login:  # (a reinitialised module has dropped it already)
            del _LOGINS[login.ident]
        with login.lock:
            try:
                login.session.close()
            except Exception:  # noqa: BLE001, S110 - closing a session the token lost
                pass
            login.session = None


def _read_pin_source(source: str) -> str:
    if source.startswith("|"):
        raise InvalidPkcs11Uri("pin-source commands (|program) are not supported: use file:PATH")
    path = source
    if source.lower().startswith("file:"):
        path = source[5:]
        if path.startswith("//"):  # file://host/path: only the local host
            host, _, rest = path[2:].partition("/")
            if host not in ("", "localhost"):
                raise InvalidPkcs11Uri(f"pin-source {source}: only local files")
            path = "/" + rest
    elif ":" in source.split("/", 1)[0]:
        raise InvalidPkcs11Uri(f"pin-source {source}: only file: sources are supported")
    return read_password(path, what=f"the PIN of pin-source {source}")


def resolve_pin(uri: Pkcs11Uri, *, pin: str | None = None, pin_file: str | os.PathLike[str] | None = None,
                pin_env: str | None = None, prompt: str | None = None,
                environ: Mapping[str, str] | None = None) -> str:
    """The user PIN: the URI's pin-value or pin-source, else `pin`, else the password rule of
    sequencer.keys (file, named variable, OPTROLLUP_PASSWORD, prompt)."""
    if uri.pin_value is not None:
        return uri.pin_value
    if uri.pin_source is not None:
        return _read_pin_source(uri.pin_source)
    if pin is not None:
        return pin
    try:
        return read_password(pin_file, pin_env, prompt=None if prompt is None else f"PIN of token "
                             f"{uri.token or uri.serial or uri.slot_id}: ", environ=environ,
                             what=f"token {uri.token or uri.serial or uri.slot_id}")
    except PasswordMissing as exc:
        raise PasswordMissing(f"{exc.message.replace('no password', 'no PIN')} (or put pin-source="
                              f"file:PATH in the pkcs11 URI)") from None


# -- keys -----------------------------------------------------------------------------------------

def decode_ec_point(point: bytes) -> bytes:
    """64 bytes X ‖ Y from a CKA_EC_POINT: a DER octet string around 04 ‖ X ‖ Y (PKCS#11), or,
    from some tokens, the bare 04 ‖ X ‖ Y."""
    p = bytes(point)
    if len(p) == 67 and p[0] == 0x04 and p[1] == 0x41:
        p = p[2:]
    elif len(p) == 68 and p[0] == 0x04 and p[1] == 0x81 and p[2] == 0x41:
        p = p[3:]
    if len(p) != 65 or p[0] != 0x04:
        raise HsmError(f"CKA_EC_POINT {point.hex()} is not an uncompressed secp256k1 point",
                       code="hsm_wrong_curve")
    return p[1:]


def _der_ints(sig: bytes) -> tuple[int, int]:
    """(r, s) of a DER ECDSA-Sig-Value (some tokens return that instead of r ‖ s)."""
    def read(b: bytes, i: int) -> tuple[int, int]:
        if b[i] != 0x02:
            raise ValueError("not an INTEGER")
        n = b[i + 1]
        return int.from_bytes(b[i + 2:i + 2 + n], "big"), i + 2 + n

    if len(sig) < 8 or sig[0] != 0x30:
        raise ValueError("not a SEQUENCE")
    r, i = read(sig, 2)
    s, _ = read(sig, i)
    return r, s


def _address(pub64: bytes) -> str:
    return to_checksum_address(keccak(pub64)[12:])


def _attr(obj: Any, name: str) -> Any:
    pkcs11 = _pkcs11()
    try:
        return obj[getattr(pkcs11.Attribute, name)]
    except (pkcs11.AttributeTypeInvalid, pkcs11.AttributeSensitive):
        return None


def _ec_keys(session: Any, object_class: Any, label: str | None = None, key_id: bytes | None = None) -> list[Any]:
    pkcs11 = _pkcs11()
    A = pkcs11.Attribute
    attrs: dict[Any, Any] = {A.CLASS: object_class, A.KEY_TYPE: pkcs11.KeyType.EC}
    if label is not None:
        attrs[A.LABEL] = label
    if key_id:
        attrs[A.ID] = key_id
    return list(session.get_objects(attrs))


class _KeyObj:
    """What eth-account's transaction signing asks of a key: `sign_msg_hash(h).vrs`."""

    def __init__(self, owner: Pkcs11Key) -> None:
        self.owner = owner

    def sign_msg_hash(self, message_hash: bytes) -> Signature:
        sig = self.owner.sign_digest(bytes(message_hash))
        return Signature(vrs=(sig[64] - 27, int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")))


class Pkcs11Key(BaseAccount):
    """A secp256k1 key in a PKCS#11 token, opened with `open_key` (or sequencer.keys.load_key)."""

    def __init__(self, uri: Pkcs11Uri, module: str, pin: str) -> None:
        self.uri = uri
        self.module = module
        self._login: _TokenLogin | None = _acquire_login(module, uri, pin)
        self._generation = -1
        self._priv: Any = None
        self._pub64 = b""
        try:
            with self._login.lock:
                self._find()
        except BaseException:
            self.close()
            raise
        self._address = _address(self._pub64)

    # -- the session ----------------------------------------------------------------------------

    def _find(self) -> None:
        """Find the key's objects in the (current) session of its token (caller holds the lock)."""
        pkcs11 = _pkcs11()
        login = self._login
        assert login is not None
        session, label_of_token = login.session, login.token.label
        try:
            privs = _ec_keys(session, pkcs11.ObjectClass.PRIVATE_KEY, self.uri.object, self.uri.id)
            if not privs:
                have = sorted({_attr(k, "LABEL") or "?" for k in
                               _ec_keys(session, pkcs11.ObjectClass.PRIVATE_KEY)})
                raise HsmKeyMissing(f"token {label_of_token!r} has no EC private key "
                                    f"{self._what()} (its keys: {', '.join(have) or 'none'})")
            if len(privs) > 1:
                raise HsmError(f"token {label_of_token!r} has {len(privs)} keys {self._what()}: add id= "
                               f"to the URI", code="hsm_key_ambiguous")
            priv = privs[0]
            label, key_id = _attr(priv, "LABEL"), _attr(priv, "ID")
            pubs = _ec_keys(session, pkcs11.ObjectClass.PUBLIC_KEY, None if key_id else label, key_id or None)
            holder = pubs[0] if len(pubs) == 1 else priv
            point, params = _attr(holder, "EC_POINT"), _attr(holder, "EC_PARAMS")
            if point is None:
                raise HsmKeyMissing(f"token {label_of_token!r}: key {self._what()} has no public key "
                                    f"object (CKA_EC_POINT) to take its address from")
            if params is not None and bytes(params) != SECP256K1_PARAMS:
                raise HsmError(f"key {self._what()} in token {label_of_token!r} is not on secp256k1 "
                               f"(CKA_EC_PARAMS {bytes(params).hex()})", code="hsm_wrong_curve")
            pub64 = decode_ec_point(point)
        except pkcs11.PKCS11Error as exc:
            raise _hsm_error(exc, f"looking for key {self._what()}") from None
        if self._pub64 and pub64 != self._pub64:
            raise HsmError(f"after reopening token {label_of_token!r}, key {self._what()} is another "
                           f"key", code="hsm_key_changed")
        self._priv, self._pub64, self._generation = priv, pub64, login.generation

    def _what(self) -> str:
        parts = []
        if self.uri.object is not None:
            parts.append(f"labelled {self.uri.object!r}")
        if self.uri.id:
            parts.append(f"with id {self.uri.id.hex()}")
        return " ".join(parts)

    def close(self) -> None:
        """Release the token (logged out once no key of this process uses it); the key cannot
        sign afterwards."""
        login, self._login, self._priv = self._login, None, None
        if login is not None:
            _release_login(login)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _raw_sign(self, digest: bytes) -> bytes:
        pkcs11 = _pkcs11()
        lost = (pkcs11.SessionHandleInvalid, pkcs11.SessionClosed, pkcs11.DeviceRemoved,
                pkcs11.TokenNotPresent, pkcs11.UserNotLoggedIn, pkcs11.ObjectHandleInvalid,
                pkcs11.KeyHandleInvalid, pkcs11.DeviceError)
        login = self._login
        if login is None:
            raise HsmError(f"key {self.uri} is closed", code="hsm_key_closed")
        for attempt in (0, 1):
            with login.lock:
                try:
                    if self._generation != login.generation:  # another key renewed the session
                        self._find()
                    return bytes(self._priv.sign(digest, mechanism=pkcs11.Mechanism.ECDSA))
                except lost as exc:
                    if attempt:
                        raise _hsm_error(exc, f"signing with {self.uri}") from None
                    login.renew(self._generation)  # once: the token restarted or came back
                except pkcs11.PKCS11Error as exc:
                    raise _hsm_error(exc, f"signing with {self.uri}") from None
        raise AssertionError("unreachable")

    # -- BaseAccount ----------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return self._address

    @property
    def public_key(self) -> bytes:
        """64 bytes X ‖ Y."""
        return self._pub64

    @property
    def key(self) -> bytes:
        raise KeyNotExtractable(f"the private key of {self.address} lives in PKCS#11 token "
                                f"{self.uri.token or self.uri.serial!r} and cannot be read; it only signs")

    def __bytes__(self) -> bytes:
        return self.key

    def __repr__(self) -> str:
        return f"<Pkcs11Key {self.address} {self.uri}>"

    def sign_digest(self, digest: bytes) -> bytes:
        """65 bytes r ‖ s ‖ v (v 27/28, low s) over a 32-byte digest, signed in the token."""
        digest = bytes(digest)
        if len(digest) != 32:
            raise ValueError("a digest is 32 bytes")
        raw = self._raw_sign(digest)
        if len(raw) == 64:
            r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        else:
            try:
                r, s = _der_ints(raw)
            except (ValueError, IndexError):
                raise HsmError(f"the token returned a {len(raw)}-byte signature, not r ‖ s",
                               code="hsm_bad_signature") from None
        if s > SECP256K1_N // 2:
            s = SECP256K1_N - s
        for recid in (0, 1):
            try:
                pub = Signature(vrs=(recid, r, s)).recover_public_key_from_msg_hash(digest)
            except Exception:  # noqa: BLE001, S112 - an id that recovers nothing
                continue
            if pub.to_bytes() == self._pub64:
                return low_s_signature(r, s, 27 + recid)
        raise HsmError(f"the token's signature does not recover its own public key ({self.address})",
                       code="hsm_bad_signature")

    def unsafe_sign_hash(self, message_hash: Any) -> SignedMessage:
        h = HexBytes(message_hash)
        sig = self.sign_digest(bytes(h))
        return SignedMessage(message_hash=h, r=int.from_bytes(sig[:32], "big"),
                             s=int.from_bytes(sig[32:64], "big"), v=sig[64], signature=HexBytes(sig))

    def sign_message(self, signable_message: SignableMessage) -> SignedMessage:
        """EIP-191 (encode_defunct) or EIP-712 (encode_typed_data) signables, as LocalAccount."""
        return self.unsafe_sign_hash(_hash_eip191_message(signable_message))

    def sign_typed_data(self, domain_data: dict[str, Any] | None = None,
                        message_types: dict[str, Any] | None = None,
                        message_data: dict[str, Any] | None = None,
                        full_message: dict[str, Any] | None = None) -> SignedMessage:
        return self.sign_message(encode_typed_data(domain_data, message_types, message_data, full_message))

    def sign_transaction(self, transaction_dict: Mapping[str, Any], blobs: Any = None) -> SignedTransaction:
        """Sign an L1 transaction (EIP-1559 and every other type eth-account knows)."""
        from eth_account._utils.signing import sign_transaction_dict

        tx = dict(transaction_dict)
        sender = tx.pop("from", None)
        if sender is not None and str(sender).lower() != self.address.lower():
            raise TypeError(f"from field must match key's {self.address}, but it was {sender}")
        v, r, s, raw = sign_transaction_dict(_KeyObj(self), tx, blobs=blobs)
        return SignedTransaction(raw_transaction=HexBytes(raw), hash=HexBytes(keccak(raw)), r=r, s=s, v=v)


def open_key(uri: str | Pkcs11Uri, *, pin: str | None = None, pin_file: str | os.PathLike[str] | None = None,
             pin_env: str | None = None, prompt: str | None = None,
             environ: Mapping[str, str] | None = None) -> Pkcs11Key:
    """The key `uri` names, its token logged in (PIN: see `resolve_pin`)."""
    u = uri if isinstance(uri, Pkcs11Uri) else Pkcs11Uri.parse(uri)
    u.require_key()
    _pkcs11()  # a missing python-pkcs11 is said before anything else
    module = find_module(u.module_path, u.module_name, environ)
    return Pkcs11Key(u, module, resolve_pin(u, pin=pin, pin_file=pin_file, pin_env=pin_env,
                                            prompt=prompt, environ=environ))


# -- administration: tokens and keys ----------------------------------------------------------------

class _CkVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]


# CK_FUNCTION_LIST up to C_InitToken (PKCS#11 2.40, section 5.2)
class _CkFunctionList(ctypes.Structure):
    _fields_ = [("version", _CkVersion)] + [(n, ctypes.c_void_p) for n in (
        "C_Initialize", "C_Finalize", "C_GetInfo", "C_GetFunctionList", "C_GetSlotList", "C_GetSlotInfo",
        "C_GetTokenInfo", "C_GetMechanismList", "C_GetMechanismInfo", "C_InitToken")]


def _c_init_token(module: str, slot_id: int, so_pin: str, label: str) -> int:
    """C_InitToken through the module's function list (python-pkcs11 has no call for it); the
    module is the one python-pkcs11 loaded and initialised (dlopen gives the same instance)."""
    dll = ctypes.CDLL(os.path.realpath(module))
    get_list = dll.C_GetFunctionList
    get_list.restype = ctypes.c_ulong
    fl = ctypes.POINTER(_CkFunctionList)()
    rv = get_list(ctypes.byref(fl))
    if rv != 0:
        return rv
    proto = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
    init_token = proto(fl.contents.C_InitToken)
    pin = so_pin.encode()
    return init_token(slot_id, pin, len(pin), label.encode().ljust(32, b" ")[:32])


def init_token(module: str, label: str, so_pin: str, user_pin: str) -> int:
    """Initialise the module's first free token as `label` with these PINs (SoftHSM always keeps
    one free slot); its slot id."""
    pkcs11 = _pkcs11()
    if not 0 < len(label.encode()) <= 32:
        raise HsmError("a token label is 1 to 32 bytes", code="invalid_token_label")
    lib = _library(module)
    if label in _token_labels(lib):
        raise HsmError(f"a token labelled {label!r} exists in {module} already", code="hsm_token_exists")
    free = None
    for slot in lib.get_slots(token_present=True):
        if not slot.get_token().flags & pkcs11.TokenFlag.TOKEN_INITIALIZED:
            free = slot
            break
    if free is None:
        raise HsmError(f"PKCS#11 module {module} has no uninitialised token left", code="hsm_no_free_slot")
    rv = _c_init_token(module, free.slot_id, so_pin, label)
    if rv == 0xA0 or rv == 0xA2:  # CKR_PIN_INCORRECT, CKR_PIN_LEN_RANGE
        raise HsmBadPin(f"the module refused the security officer PIN (C_InitToken: CKR {rv:#x})")
    if rv != 0:
        raise HsmError(f"C_InitToken failed on slot {free.slot_id}: CKR {rv:#x}")
    token = lib.get_token(token_label=label)
    with _login(token, so_pin, rw=True, so=True) as session:
        try:
            session.init_pin(user_pin)
        except (pkcs11.PinLenRange, pkcs11.PinInvalid):
            raise HsmBadPin("the module refused the user PIN (length or characters)") from None
        except pkcs11.PKCS11Error as exc:
            raise _hsm_error(exc, "setting the user PIN") from None
    return token.slot.slot_id


@dataclass(frozen=True)
class KeyInfo:
    """A secp256k1 key of a token: label, id, address and the URI that opens it."""

    label: str
    id: bytes
    address: str
    uri: Pkcs11Uri


def _key_uri(token: str, label: str, module: str | None, pin_source: str | None) -> Pkcs11Uri:
    return Pkcs11Uri(token=token, object=label, type="private", module_path=module,
                     pin_source=None if pin_source is None else f"file:{pin_source}")


def generate_key(module: str, token_label: str, label: str, pin: str, *,
                 pin_file: str | None = None) -> KeyInfo:
    """A new secp256k1 key pair in the token (private half: CKA_SENSITIVE, not extractable, sign
    only), labelled `label` (unique in the token)."""
    pkcs11 = _pkcs11()
    A = pkcs11.Attribute
    login = _acquire_login(module, Pkcs11Uri(token=token_label), pin)
    try:
        with login.lock:
            session = login.session
            if list(session.get_objects({A.LABEL: label})):
                raise HsmKeyExists(f"token {token_label!r} has an object labelled {label!r} already")
            key_id = os.urandom(8)
            params = session.create_domain_parameters(pkcs11.KeyType.EC, {A.EC_PARAMS: SECP256K1_PARAMS},
                                                      local=True)
            pub, _priv = params.generate_keypair(
                store=True, label=label, id=key_id,
                capabilities=pkcs11.MechanismFlag.SIGN | pkcs11.MechanismFlag.VERIFY,
                public_template={A.PRIVATE: False},
                private_template={A.SENSITIVE: True, A.EXTRACTABLE: False, A.PRIVATE: True,
                                  A.SIGN: True, A.DERIVE: False, A.DECRYPT: False, A.UNWRAP: False})
            address = _address(decode_ec_point(pub[A.EC_POINT]))
    except pkcs11.PKCS11Error as exc:
        raise _hsm_error(exc, f"generating a secp256k1 key in token {token_label!r}") from None
    finally:
        _release_login(login)
    pin_source = None if pin_file is None else os.path.abspath(pin_file)
    return KeyInfo(label, key_id, address, _key_uri(token_label, label, module, pin_source))


def list_keys(module: str, token_label: str, pin: str | None = None) -> list[KeyInfo]:
    """The secp256k1 keys of a token, by their public halves (no PIN needed; with `pin`, private
    public-key objects too)."""
    pkcs11 = _pkcs11()
    A = pkcs11.Attribute
    uri = Pkcs11Uri(token=token_label)
    login = _acquire_login(module, uri, pin) if pin is not None else None
    session = login.session if login is not None else _find_token(_library(module), uri, module).open()
    out = []
    try:
        for pub in _ec_keys(session, pkcs11.ObjectClass.PUBLIC_KEY):
            params = _attr(pub, "EC_PARAMS")
            if params is not None and bytes(params) != SECP256K1_PARAMS:
                continue
            label, key_id = _attr(pub, "LABEL") or "", bytes(_attr(pub, "ID") or b"")
            address = _address(decode_ec_point(pub[A.EC_POINT]))
            out.append(KeyInfo(label, key_id, address, _key_uri(token_label, label, module, None)))
    except pkcs11.PKCS11Error as exc:
        raise _hsm_error(exc, f"listing the keys of token {token_label!r}") from None
    finally:
        if login is not None:
            _release_login(login)
        else:
            session.close()  # not logged in: closing logs nobody out
    return sorted(out, key=lambda k: k.label)


# -- a SoftHSM2 token directory (the devnet's `--hsm`, tests) ---------------------------------------

@dataclass(frozen=True)
class SoftHsmDir:
    """A private SoftHSM2 set-up: its config, token directory, PIN file and keys."""

    root: Path
    module: str
    token: str
    keys: dict[str, KeyInfo]

    @property
    def conf(self) -> Path:
        return self.root / "softhsm2.conf"

    @property
    def pin_file(self) -> Path:
        return self.root / "pin"

    def uri(self, label: str) -> str:
        """The key's URI, its PIN from the directory's pin file."""
        return replace(self.keys[label].uri, pin_source=f"file:{self.pin_file}").format()


def softhsm_dir(root: str | os.PathLike[str], token: str = "optrollup", labels: tuple[str, ...] = (), *,
                module: str | None = None) -> SoftHsmDir:
    """A SoftHSM2 token under `root` (softhsm2.conf, tokens/, random user and security officer
    PINs in `pin` and `so-pin`, all private to this user), initialised once, with a secp256k1
    key per label of `labels` generated once. Points SOFTHSM2_CONF (this process and the
    children it starts) at it: SoftHSM reads it when the module is initialised."""
    d = Path(root).resolve()
    (d / "tokens").mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(d, 0o700)
    conf = d / "softhsm2.conf"
    if not conf.exists():
        conf.write_text(f"directories.tokendir = {d / 'tokens'}\nobjectstore.backend = file\n"
                        "log.level = ERROR\nslots.removable = false\n")
    for name in ("pin", "so-pin"):
        f = d / name
        if not f.exists():
            fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(os.urandom(12).hex() + "\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    mod = find_module(module)
    pin = read_password(d / "pin", what="the devnet token PIN")
    lib = _library(mod)
    if token not in _token_labels(lib):
        init_token(mod, token, read_password(d / "so-pin", what="the devnet token SO PIN"), pin)
    have = {k.label: k for k in list_keys(mod, token)}
    for label in labels:
        if label not in have:
            generate_key(mod, token, label, pin)
    keys = {k.label: k for k in list_keys(mod, token)}
    return SoftHsmDir(d, mod, token, keys)


# -- `optrollup keys hsm-init | hsm-new | hsm-list` -----------------------------------------------

def _pin_from(args: argparse.Namespace, file_attr: str, env_attr: str, what: str, prompt: str | None,
              confirm: bool = False) -> str:
    return read_password(getattr(args, file_attr, None), getattr(args, env_attr, None), prompt=prompt,
                         confirm=confirm, what=what)


def _hsm_init(args: argparse.Namespace) -> int:
    module = find_module(args.module)
    so_pin = read_password(args.so_pin_file, None, prompt="Security officer PIN: ", confirm=True,
                           environ={}, what="the security officer PIN (--so-pin-file)")
    pin = _pin_from(args, "pin_file", "pin_env", "the user PIN (--pin-file)", "User PIN: ", confirm=True)
    slot = init_token(module, args.token, so_pin, pin)
    print(f"token {args.token!r} initialised in slot {slot} of {module}"
          f"{' (SOFTHSM2_CONF=' + os.environ['SOFTHSM2_CONF'] + ')' if os.environ.get('SOFTHSM2_CONF') else ''}")
    return 0


def _hsm_new(args: argparse.Namespace) -> int:
    module = find_module(args.module)
    pin = _pin_from(args, "pin_file", "pin_env", f"token {args.token}", f"PIN of token {args.token}: ")
    info = generate_key(module, args.token, args.label, pin, pin_file=args.pin_file)
    print(info.address)
    print(info.uri.format())
    print(f"secp256k1 key {args.label!r} generated in token {args.token!r} (sensitive, not extractable)",
          file=sys.stderr)
    return 0


def _hsm_list(args: argparse.Namespace) -> int:
    module = find_module(args.module)
    pin = None
    if args.pin_file or args.pin_env:
        pin = _pin_from(args, "pin_file", "pin_env", f"token {args.token}", None)
    keys = list_keys(module, args.token, pin)
    if args.json:
        import json

        print(json.dumps([{"label": k.label, "id": k.id.hex(), "address": k.address, "uri": k.uri.format()}
                          for k in keys]))
        return 0
    if not keys:
        print(f"no secp256k1 keys in token {args.token!r}")
    for k in keys:
        print(f"{k.address}  {k.label:<16}  {k.uri.format()}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add hsm-init, hsm-new and hsm-list to `optrollup keys` (sequencer.client.cli made it)."""
    keys_parser = sub.choices["keys"]
    ks = next(a for a in keys_parser._actions if isinstance(a, argparse._SubParsersAction))
    register_keys_commands(ks)


def register_keys_commands(ks: argparse._SubParsersAction) -> None:
    """Add hsm-init, hsm-new and hsm-list to a `keys` subcommand parser."""
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--module", metavar="PATH",
                       help=f"the PKCS#11 module (default ${MODULE_ENV}, else SoftHSM2's)")
        p.add_argument("--token", required=True, metavar="LABEL", help="the token's label")

    def pin_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--pin-file", metavar="FILE", help="the user PIN: the first line of FILE "
                                                          f"(else --pin-env, else ${PASSWORD_ENV}, else prompted)")
        p.add_argument("--pin-env", metavar="NAME", help="the user PIN from the environment variable NAME")

    init = ks.add_parser("hsm-init", help="initialise a SoftHSM token (label, security officer and user PINs)")
    common(init)
    init.add_argument("--so-pin-file", metavar="FILE", help="the security officer PIN: the first line of FILE "
                                                            "(else prompted twice)")
    pin_args(init)
    init.set_defaults(func=_hsm_init)
    new = ks.add_parser("hsm-new", help="generate a secp256k1 key in a token; print its address and URI")
    common(new)
    new.add_argument("--label", required=True, metavar="NAME", help="the key's label (CKA_LABEL), e.g. poster")
    pin_args(new)
    new.set_defaults(func=_hsm_new)
    lst = ks.add_parser("hsm-list", help="list a token's secp256k1 keys: address, label, URI")
    common(lst)
    pin_args(lst)
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(func=_hsm_list)

