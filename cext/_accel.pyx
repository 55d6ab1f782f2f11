# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Accelerated twin of cext._pure: same names, signatures and errors.

Python objects are read and validated with the GIL held; the hashing and curve work runs in C
with the GIL released (see cext/src). Inputs the fast paths do not recognise are handed to the
shared rules in cext._types, so errors match the pure twin exactly.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memcpy, memset

from cext import _pure
from cext._types import ORDER_TYPEHASH, Order, as_bytes, check_threads, normalize_order

cdef bytes _ZERO32 = b"\0" * 32
cdef bytes _TYPEHASH = ORDER_TYPEHASH


cdef int _check(int rc) except -1:
    """The one place C return codes become Python exceptions."""
    if rc == OPTR_OK:
        return 0
    if rc == OPTR_ENOMEM:
        raise MemoryError("cext: out of memory")
    if rc == OPTR_ECONTEXT:
        raise RuntimeError("cext: libsecp256k1 context could not be created")
    raise RuntimeError(f"cext: native call failed with code {rc}")


cdef inline bytes _exact(object value, str name, Py_ssize_t length):
    """bytes of exactly `length` (any length when < 0); shared rules for anything not bytes."""
    if type(value) is bytes and (length < 0 or PyBytes_GET_SIZE(value) == length):
        return <bytes>value
    return as_bytes(value, name, None if length < 0 else length)


cdef inline list _as_list(object seq):
    return seq if type(seq) is list else list(seq)


cdef bytes _join_fixed(list items, str name, Py_ssize_t width):
    """Concatenate fixed-width items into one buffer, validating each."""
    cdef Py_ssize_t n = len(items), i
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n * width)
    cdef char *dst = PyBytes_AS_STRING(out)
    cdef bytes b
    for i in range(n):
        b = _exact(items[i], f"{name}[{i}]", width)
        memcpy(dst + i * width, PyBytes_AS_STRING(b), width)
    return out


cdef list _split32(const uint8_t *buf, Py_ssize_t n):
    return [PyBytes_FromStringAndSize(<char *>buf + 32 * i, 32) for i in range(n)]


def keccak256(data) -> bytes:
    """Ethereum Keccak-256 (original padding, not SHA3-256) of `data`."""
    cdef bytes b = _exact(data, "data", -1)
    cdef uint8_t out[32]
    cdef const uint8_t *p = <const uint8_t *>PyBytes_AS_STRING(b)
    cdef size_t n = PyBytes_GET_SIZE(b)
    if n < 4096:
        optr_keccak256(p, n, out)
    else:
        with nogil:
            optr_keccak256(p, n, out)
    return PyBytes_FromStringAndSize(<char *>out, 32)


cdef class KeccakPrefix:
    """keccak256(prefix + data) for many `data` after one `prefix`: the prefix's whole
    136-byte blocks are absorbed once, here, and each `hash` starts from that state."""

    cdef uint64_t _state[25]
    cdef bytes _rest  # the prefix's bytes after its whole blocks (< 136)
    cdef readonly bytes prefix

    def __cinit__(self, prefix):
        cdef bytes b = _exact(prefix, "prefix", -1)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
        cdef Py_ssize_t full = n - n % OPTR_KECCAK_RATE
        memset(self._state, 0, sizeof(self._state))
        optr_keccak_absorb(self._state, <const uint8_t *>PyBytes_AS_STRING(b), full)
        self._rest = b[full:]
        self.prefix = b

    def hash(self, data) -> bytes:
        """keccak256(prefix + data)."""
        cdef bytes tail = self._rest + _exact(data, "data", -1)
        cdef uint8_t out[32]
        optr_keccak256_finish(self._state, <const uint8_t *>PyBytes_AS_STRING(tail),
                              PyBytes_GET_SIZE(tail), out)
        return PyBytes_FromStringAndSize(<char *>out, 32)

    def hash_words(self, values) -> bytes:
        """keccak256(prefix + the 32-byte big-endian word of each int in `values`, taken
        mod 2**256: two's complement for negatives, as abi.encode writes int256)."""
        cdef list vals = _as_list(values)
        cdef Py_ssize_t n = len(vals), r = PyBytes_GET_SIZE(self._rest), i, j
        cdef bytes buf = PyBytes_FromStringAndSize(NULL, r + 32 * n)
        cdef uint8_t *p = <uint8_t *>PyBytes_AS_STRING(buf)
        cdef uint8_t *w
        cdef long long v
        cdef int overflow
        cdef uint8_t out[32]
        memcpy(p, PyBytes_AS_STRING(self._rest), r)
        for i in range(n):
            x = vals[i]
            if not isinstance(x, int):
                raise TypeError(f"values[{i}] must be an int, not {type(x).__name__}")
            w = p + r + 32 * i
            v = PyLong_AsLongLongAndOverflow(x, &overflow)
            if overflow:
                memcpy(w, PyBytes_AS_STRING(_word_mod(x)), 32)
                continue
            memset(w, 0xFF if v < 0 else 0, 24)
            for j in range(8):
                w[31 - j] = <uint8_t>((<unsigned long long>v >> (8 * j)) & 0xFF)
        optr_keccak256_finish(self._state, p, r + 32 * n, out)
        return PyBytes_FromStringAndSize(<char *>out, 32)


cdef object _MOD256 = 1 << 256


cdef bytes _word_mod(object x):
    return (x % _MOD256).to_bytes(32, "big")


def keccak256_many(items) -> list:
    """keccak256 of each item, in order; large batches are split across threads."""
    cdef list src = _as_list(items)
    cdef Py_ssize_t n = len(src), i
    cdef list keep = [None] * n
    cdef const uint8_t **ptrs = <const uint8_t **>PyMem_Malloc(max(n, 1) * sizeof(uint8_t *))
    cdef size_t *lens = <size_t *>PyMem_Malloc(max(n, 1) * sizeof(size_t))
    cdef uint8_t *out = <uint8_t *>PyMem_Malloc(max(n, 1) * 32)
    cdef bytes b
    cdef int rc
    if ptrs == NULL or lens == NULL or out == NULL:
        PyMem_Free(ptrs); PyMem_Free(lens); PyMem_Free(out)
        raise MemoryError()
    try:
        for i in range(n):
            b = _exact(src[i], f"items[{i}]", -1)
            keep[i] = b
            ptrs[i] = <const uint8_t *>PyBytes_AS_STRING(b)
            lens[i] = PyBytes_GET_SIZE(b)
        if n >= NOGIL_HASHES:
            with nogil:
                rc = optr_keccak256_many(ptrs, lens, n, out, 0)
        else:
            rc = optr_keccak256_many(ptrs, lens, n, out, 0)
        _check(rc)
        return _split32(out, n)
    finally:
        PyMem_Free(ptrs); PyMem_Free(lens); PyMem_Free(out)


def merkle_root(leaves) -> bytes:
    """Root over 32-byte leaves padded with zero leaves to a power of two; empty -> 32 zero bytes."""
    cdef list src = _as_list(leaves)
    cdef bytes buf = _join_fixed(src, "leaves", 32)
    cdef const uint8_t *p = <const uint8_t *>PyBytes_AS_STRING(buf)
    cdef size_t n = len(src)
    cdef uint8_t out[32]
    cdef int rc
    if n >= NOGIL_HASHES:
        with nogil:
            rc = optr_merkle_root(p, n, out, 0)
    else:
        rc = optr_merkle_root(p, n, out, 0)
    _check(rc)
    return PyBytes_FromStringAndSize(<char *>out, 32)


# The GIL is released only around calls long enough to repay it (~>= 100 us of C): a thread
# that drops it while another thread runs Python waits up to the switch interval (5 ms) to get
# it back, which for one signature or one digest on the event loop cost more than the work.
cdef enum:
    NOGIL_HASHES = 64       # keccak-sized items (digests, leaves, pairs): ~1-2 us each
    NOGIL_RECOVERIES = 4    # ecrecovers: ~40-50 us each


cdef inline void _hash_level(uint8_t *lv, Py_ssize_t n, Py_ssize_t half, uint8_t *zero) noexcept nogil:
    """One Merkle level in place: pairs hashed into the front half (an odd last node with zero)."""
    cdef Py_ssize_t i
    for i in range(half):
        _hash_pair(lv + 64 * i, lv + 64 * i + 32, lv + 32 * i)
    if n & 1:
        _hash_pair(lv + 32 * (n - 1), zero, lv + 32 * half)
    _hash_pair(zero, zero, zero)


cdef inline void _hash_pair(const uint8_t *a, const uint8_t *b, uint8_t *out) noexcept nogil:
    cdef uint8_t tmp[64]
    memcpy(tmp, a, 32)
    memcpy(tmp + 32, b, 32)
    optr_keccak256(tmp, 64, out)


def merkle_proof(leaves, index) -> list:
    """Sibling hashes from the leaf up to (not including) the root; len = ceil(log2(n))."""
    cdef list src = _as_list(leaves)
    cdef bytes buf = _join_fixed(src, "leaves", 32)
    if type(index) is bool or not isinstance(index, int):
        raise TypeError(f"index must be an int, got {type(index).__name__}")
    if not 0 <= index < len(src):
        raise ValueError(f"index {index} out of range for {len(src)} leaves")
    cdef Py_ssize_t n = len(src), idx = index, i, half
    cdef bytearray level = bytearray(buf)
    cdef uint8_t *lv = level
    cdef uint8_t zero[32]
    cdef list proof = []
    memset(zero, 0, 32)
    while n > 1:
        if (idx ^ 1) < n:
            proof.append(PyBytes_FromStringAndSize(<char *>lv + 32 * (idx ^ 1), 32))
        else:
            proof.append(PyBytes_FromStringAndSize(<char *>zero, 32))
        half = n // 2
        if half >= NOGIL_HASHES:
            with nogil:
                _hash_level(lv, n, half, zero)
        else:
            _hash_level(lv, n, half, zero)
        n = half + (n & 1)
        idx >>= 1
    return proof


def merkle_verify(root, leaf, index, proof) -> bool:
    """True iff `proof` takes `leaf` at `index` to `root`. Bad lengths/types raise."""
    cdef bytes r = _exact(root, "root", 32)
    cdef bytes l = _exact(leaf, "leaf", 32)
    cdef list sibs = _as_list(proof)
    cdef bytes joined = _join_fixed(sibs, "proof", 32)
    if type(index) is bool or not isinstance(index, int):
        raise TypeError(f"index must be an int, got {type(index).__name__}")
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    cdef Py_ssize_t depth = len(sibs), i
    if index >> depth:
        return False
    cdef uint8_t node[32]
    cdef const uint8_t *sp = <const uint8_t *>PyBytes_AS_STRING(joined)
    memcpy(node, PyBytes_AS_STRING(l), 32)
    for i in range(depth):
        if (index >> i) & 1:
            _hash_pair(sp + 32 * i, node, node)
        else:
            _hash_pair(node, sp + 32 * i, node)
    return PyBytes_FromStringAndSize(<char *>node, 32) == r


def recover_addresses(digests, signatures, threads=0, release_gil=None) -> list:
    """20-byte signer address per (digest, 65-byte r||s||v signature), or None when invalid
    (v not in {0,1,27,28}, r or s zero or >= n, s > n/2). threads=0: all cores. release_gil:
    True from a worker thread (the event loop runs meanwhile), False on the event loop, None:
    only for NOGIL_RECOVERIES signatures or more."""
    cdef int nthreads = check_threads(threads)
    cdef list ds = _as_list(digests)
    cdef list ss = _as_list(signatures)
    cdef bytes dbuf = _join_fixed(ds, "digests", 32)
    cdef bytes sbuf = _join_fixed(ss, "signatures", 65)
    if len(ds) != len(ss):
        raise ValueError(f"{len(ds)} digests but {len(ss)} signatures")
    cdef Py_ssize_t n = len(ds), i
    cdef bytes addrs = PyBytes_FromStringAndSize(NULL, max(n, 1) * 20)
    cdef bytes ok = PyBytes_FromStringAndSize(NULL, max(n, 1))
    cdef const uint8_t *dp = <const uint8_t *>PyBytes_AS_STRING(dbuf)
    cdef const uint8_t *sp = <const uint8_t *>PyBytes_AS_STRING(sbuf)
    cdef uint8_t *ap = <uint8_t *>PyBytes_AS_STRING(addrs)
    cdef uint8_t *okp = <uint8_t *>PyBytes_AS_STRING(ok)
    cdef int rc
    if (n >= NOGIL_RECOVERIES) if release_gil is None else release_gil:
        with nogil:
            rc = optr_recover_many(dp, sp, n, ap, okp, nthreads)
    else:
        rc = optr_recover_many(dp, sp, n, ap, okp, nthreads)
    _check(rc)
    return [PyBytes_FromStringAndSize(<char *>ap + 20 * i, 20) if okp[i] else None
            for i in range(n)]


cdef dict _instrument_hashes = {}


cdef bytes _instrument_hash(str instrument):
    cdef bytes h = _instrument_hashes.get(instrument)
    if h is None:
        h = keccak256(instrument.encode())
        if len(_instrument_hashes) > 65536:
            _instrument_hashes.clear()
        _instrument_hashes[instrument] = h
    return h


cdef inline void _put_uint(uint8_t *word, object value):
    memcpy(word, PyBytes_AS_STRING(value.to_bytes(32, "big")), 32)


cdef inline void _put_small(uint8_t *word, unsigned long long value):
    cdef int k
    memset(word, 0, 24)
    for k in range(8):
        word[31 - k] = (value >> (8 * k)) & 0xFF


cdef void _fill_normalized(tuple t, uint8_t *rec) except *:
    account, instrument, is_buy, price, amount, nonce, expiry, tif, post_only, reduce_only = t
    memset(rec, 0, 12)
    memcpy(rec + 12, PyBytes_AS_STRING(account), 20)
    memcpy(rec + 32, PyBytes_AS_STRING(_instrument_hash(instrument)), 32)
    _put_small(rec + 64, 1 if is_buy else 0)
    _put_uint(rec + 96, price)
    _put_uint(rec + 128, amount)
    _put_small(rec + 160, nonce)
    _put_small(rec + 192, expiry)
    _put_small(rec + 224, tif)
    _put_small(rec + 256, 1 if post_only else 0)
    _put_small(rec + 288, 1 if reduce_only else 0)


cdef bint _fast_fill(object o, uint8_t *rec) except -1:
    """Fill a record from an ordinary Order; return False to defer to the shared rules."""
    if type(o) is not Order:
        return False
    cdef tuple t = <tuple>o
    account, instrument, is_buy, price, amount, nonce, expiry, tif, post_only, reduce_only = t
    if type(account) is not bytes or PyBytes_GET_SIZE(account) != 20 or type(instrument) is not str:
        return False
    if type(is_buy) is not bool or type(post_only) is not bool or type(reduce_only) is not bool:
        return False
    if type(price) is not int or type(amount) is not int or type(nonce) is not int:
        return False
    if type(expiry) is not int or type(tif) is not int:
        return False
    if price < 0 or amount < 0 or price >> 256 or amount >> 256:
        return False
    if nonce < 0 or expiry < 0 or nonce >> 64 or expiry >> 64 or not 0 <= tif < 256:
        return False
    _fill_normalized(t, rec)
    return True


def order_digests(domain_separator, orders) -> list:
    """EIP-712 digests keccak256(0x1901 || domain || hashStruct(order)), one per order."""
    cdef bytes domain = _exact(domain_separator, "domain_separator", 32)
    cdef list src = _as_list(orders)
    cdef Py_ssize_t n = len(src), i
    cdef bytes records = PyBytes_FromStringAndSize(NULL, max(n, 1) * OPTR_ORDER_RECORD_SIZE)
    cdef uint8_t *rp = <uint8_t *>PyBytes_AS_STRING(records)
    for i in range(n):
        if not _fast_fill(src[i], rp + i * OPTR_ORDER_RECORD_SIZE):
            _fill_normalized(normalize_order(src[i]), rp + i * OPTR_ORDER_RECORD_SIZE)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, max(n, 1) * 32)
    cdef uint8_t *op = <uint8_t *>PyBytes_AS_STRING(out)
    cdef const uint8_t *dp = <const uint8_t *>PyBytes_AS_STRING(domain)
    cdef const uint8_t *tp = <const uint8_t *>PyBytes_AS_STRING(_TYPEHASH)
    cdef int rc
    if n >= NOGIL_HASHES:
        with nogil:
            rc = optr_order_digests(dp, tp, rp, n, op, 0)
    else:
        rc = optr_order_digests(dp, tp, rp, n, op, 0)
    _check(rc)
    return _split32(op, n)


cdef extern from "Python.h":
    int PyObject_IS_GC(object obj)
    void PyObject_GC_UnTrack(void *obj)


def untrack(obj) -> None:
    """Take `obj` out of the cyclic collector's lists (as CPython does itself with tuples of
    atomic values), so that collections never scan it again; it is still freed by reference
    counting. Only for objects that can never be part of a reference cycle (immutable values,
    or records whose fields only ever hold such values): a cycle through an untracked object
    is never collected. A no-op for objects the collector does not track."""
    if PyObject_IS_GC(obj):
        PyObject_GC_UnTrack(<void *>obj)


cdef enum:
    _MARGIN_STACK = 64  # positions summed without a heap buffer


cdef inline bint _int64(object x, int64_t *out):
    """x as an int64 into *out; False when x is not an int or does not fit."""
    cdef int overflow
    if not isinstance(x, int):
        return False
    out[0] = PyLong_AsLongLongAndOverflow(x, &overflow)
    return not overflow


def margin_sums(collateral, amounts, rows, unit) -> tuple:
    """(equity, initial, maintenance) of positions `amounts` with `rows[i]` = (mark_lo, mark_hi,
    im, mm): see cext._pure.margin_sums. In C with 128-bit products when every input and
    running sum fits int64; otherwise (or for anything unusual) the pure twin answers, so
    results and errors are the same."""
    cdef list qs = _as_list(amounts), rs = _as_list(rows)
    cdef Py_ssize_t n = len(qs), i, k
    cdef int64_t c = 0, u = 0
    cdef int64_t out[3]
    cdef int64_t stack_q[_MARGIN_STACK]
    cdef int64_t stack_r[4 * _MARGIN_STACK]
    cdef int64_t *q = stack_q
    cdef int64_t *r = stack_r
    cdef int rc = OPTR_ERANGE
    if len(rs) != n or not _int64(collateral, &c) or not _int64(unit, &u) or u <= 0:
        return _pure.margin_sums(collateral, qs, rs, unit)
    if n > _MARGIN_STACK:
        q = <int64_t *>PyMem_Malloc(n * 5 * sizeof(int64_t))
        if q == NULL:
            raise MemoryError("cext: out of memory")
        r = q + n
    try:
        for i in range(n):
            row = rs[i]
            if not (isinstance(row, tuple) and len(<tuple>row) == 4 and _int64(qs[i], q + i)):
                break
            for k in range(4):
                if not _int64((<tuple>row)[k], r + 4 * i + k):
                    break
            else:
                continue
            break
        else:
            rc = optr_margin_sums(c, q, r, n, u, out)
    finally:
        if q != stack_q:
            PyMem_Free(q)
    if rc != OPTR_OK:
        return _pure.margin_sums(collateral, qs, rs, unit)
    return (out[0], out[1], out[2])
