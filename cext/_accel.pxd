# C declarations for the native primitives in cext/src (see optr.h for contracts).
from libc.stdint cimport int64_t, uint8_t, uint64_t

cdef extern from "src/optr.h" nogil:
    int OPTR_OK
    int OPTR_ENOMEM
    int OPTR_ETHREAD
    int OPTR_ECONTEXT
    int OPTR_ERANGE
    int OPTR_ORDER_RECORD_SIZE
    void optr_keccak256(const uint8_t *data, size_t length, uint8_t *out)
    int OPTR_KECCAK_RATE
    void optr_keccak_absorb(uint64_t *s, const uint8_t *data, size_t length)
    void optr_keccak256_finish(const uint64_t *s, const uint8_t *data, size_t length, uint8_t *out)
    int optr_keccak256_many(const uint8_t *const *ptrs, const size_t *lens, size_t n,
                            uint8_t *out, int threads)
    int optr_merkle_root(const uint8_t *leaves, size_t n, uint8_t *out, int threads)
    int optr_recover_many(const uint8_t *digests, const uint8_t *sigs, size_t n,
                          uint8_t *addrs, uint8_t *ok, int threads)
    int optr_order_digests(const uint8_t *domain, const uint8_t *typehash,
                           const uint8_t *records, size_t n, uint8_t *out, int threads)
    int optr_margin_sums(int64_t collateral, const int64_t *q, const int64_t *rows, size_t n,
                         int64_t unit, int64_t *out)
