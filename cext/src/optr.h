/* optrollup native primitives. All functions are GIL-free C; callers hold no Python objects.
 * Return codes: OPTR_OK or a negative OPTR_E* value, turned into exceptions in one place
 * (cext/_accel.pyx: _check). */
#ifndef OPTR_H
#define OPTR_H
#include <stddef.h>
#include <stdint.h>

#define OPTR_OK 0
#define OPTR_ENOMEM -1
#define OPTR_ETHREAD -2
#define OPTR_ECONTEXT -3
#define OPTR_ERANGE -4   /* a value outside what the C path handles: use the Python twin */

/* Keccak-256 (the original Keccak padding used by Ethereum, not SHA3-256). */
void optr_keccak256(const uint8_t *in, size_t len, uint8_t out[32]);

/* The sponge in two steps, for many inputs that share a long prefix: optr_keccak_absorb xors
 * the len - len % 136 leading bytes of `in` into state s (start from 25 zero words), block by
 * block; optr_keccak256_finish(s, rest, ...) then gives keccak256(what s absorbed || rest)
 * without changing s. optr_keccak256(in, len) = finish(zero state, in, len). */
#define OPTR_KECCAK_RATE 136
void optr_keccak_absorb(uint64_t s[25], const uint8_t *in, size_t len);
void optr_keccak256_finish(const uint64_t s[25], const uint8_t *in, size_t len, uint8_t out[32]);

/* out[32*i .. 32*i+31] = keccak256(ptrs[i][0 .. lens[i]-1]); threads <= 0: all online cores. */
int optr_keccak256_many(const uint8_t *const *ptrs, const size_t *lens, size_t n,
                        uint8_t *out, int threads);

/* Merkle root of n 32-byte leaves (design.md rule: pad with zero leaves to a power of two,
 * parent = keccak256(left || right), n == 0 gives 32 zero bytes). leaves is not modified. */
int optr_merkle_root(const uint8_t *leaves, size_t n, uint8_t out[32], int threads);

/* Recover Ethereum addresses. digests: n*32 bytes; sigs: n*65 bytes r||s||v, v in {0,1,27,28}.
 * addrs: n*20 bytes out; ok[i] = 1 when recovered, 0 for any invalid signature
 * (bad v, r or s zero or >= n, s > n/2, no point). */
int optr_recover_many(const uint8_t *digests, const uint8_t *sigs, size_t n,
                      uint8_t *addrs, uint8_t *ok, int threads);

/* EIP-712 digests of Order structs. Each record is ORDER_RECORD_SIZE bytes, laid out as the
 * ABI-encoded struct body minus the typehash and with the instrument already hashed:
 *   [0..31] account (left-padded), [32..63] keccak(instrument), then isBuy, price, amount, nonce,
 *   expiry, timeInForce, postOnly, reduceOnly as 32-byte words.
 * out[32*i..] = keccak256(0x1901 || domain || keccak256(typehash || record_i)). */
#define OPTR_ORDER_WORDS 10
#define OPTR_ORDER_RECORD_SIZE (32 * OPTR_ORDER_WORDS)
int optr_order_digests(const uint8_t domain[32], const uint8_t typehash[32],
                       const uint8_t *records, size_t n, uint8_t *out, int threads);

/* Margin sums of n positions (design.md "Risk"; sequencer/core/margin.py), Python's floor
 * division by unit > 0, every product exact in 128 bits: e = collateral + sum over i of
 * floor(q*lo/unit) (q >= 0) or floor(q*hi/unit) (q < 0); im, mm = sum over shorts of
 * -floor(q*im/unit), -floor(q*mm/unit); rows[4*i..4*i+3] = lo, hi, im, mm of position i.
 * out = {e, im, mm}; OPTR_ERANGE if unit <= 0 or a running sum leaves int64. */
int optr_margin_sums(int64_t collateral, const int64_t *q, const int64_t *rows, size_t n,
                     int64_t unit, int64_t out[3]);

/* Number of worker threads for a batch of n items given the caller's request. */
int optr_threads_for(size_t n, int requested, size_t min_per_thread);
#endif
