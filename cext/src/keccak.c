/* Keccak-256 sponge over optr_keccak_f1600 (rate 136 bytes, Keccak padding 0x01 .. 0x80). */
#include <string.h>
#include "optr.h"
#include "keccak_f1600.h"

#define RATE 136

static inline uint64_t load64_le(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline void store64_le(uint8_t *p, uint64_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

void optr_keccak_absorb(uint64_t s[25], const uint8_t *in, size_t len) {
    while (len >= RATE) {
        for (int i = 0; i < RATE / 8; i++) s[i] ^= load64_le(in + 8 * i);
        optr_keccak_f1600(s);
        in += RATE;
        len -= RATE;
    }
}

void optr_keccak256_finish(const uint64_t state[25], const uint8_t *in, size_t len,
                           uint8_t out[32]) {
    uint64_t s[25];
    memcpy(s, state, sizeof s);
    size_t full = len - len % RATE;
    optr_keccak_absorb(s, in, full);
    in += full;
    len -= full;
    uint8_t last[RATE];
    memset(last, 0, RATE);
    if (len) memcpy(last, in, len);
    last[len] ^= 0x01;
    last[RATE - 1] ^= 0x80;
    for (int i = 0; i < RATE / 8; i++) s[i] ^= load64_le(last + 8 * i);
    optr_keccak_f1600(s);
    for (int i = 0; i < 4; i++) store64_le(out + 8 * i, s[i]);
}

void optr_keccak256(const uint8_t *in, size_t len, uint8_t out[32]) {
    static const uint64_t zero[25] = {0};
    optr_keccak256_finish(zero, in, len, out);
}

/* keccak256(a || b) for two 32-byte inputs: one permutation, no buffer copies. */
void optr_keccak256_pair(const uint8_t a[32], const uint8_t b[32], uint8_t out[32]) {
    uint64_t s[25] = {0};
    for (int i = 0; i < 4; i++) s[i] = load64_le(a + 8 * i);
    for (int i = 0; i < 4; i++) s[4 + i] = load64_le(b + 8 * i);
    s[8] = 0x01;
    s[16] = 0x8000000000000000ULL;
    optr_keccak_f1600(s);
    for (int i = 0; i < 4; i++) store64_le(out + 8 * i, s[i]);
}
