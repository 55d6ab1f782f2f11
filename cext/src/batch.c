/* Batch primitives: keccak over many inputs, Merkle roots, EIP-712 order digests, and
 * secp256k1 public-key recovery (libsecp256k1 does the curve arithmetic). */
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>
#include "optr.h"
#include "parallel.h"

/* ---- keccak over many inputs ---- */
typedef struct {
    const uint8_t *const *ptrs;
    const size_t *lens;
    uint8_t *out;
} many_ctx;

static void many_range(void *c, size_t b, size_t e) {
    many_ctx *m = (many_ctx *)c;
    for (size_t i = b; i < e; i++) optr_keccak256(m->ptrs[i], m->lens[i], m->out + 32 * i);
}

int optr_keccak256_many(const uint8_t *const *ptrs, const size_t *lens, size_t n,
                        uint8_t *out, int threads) {
    many_ctx m = {ptrs, lens, out};
    return optr_parallel_for(n, optr_threads_for(n, threads, 4096), many_range, &m);
}

/* ---- Merkle ---- */
typedef struct {
    const uint8_t *src; /* the level below, read as consecutive (left, right) pairs */
    uint8_t *dst;
} level_ctx;

static void level_range(void *c, size_t b, size_t e) {
    level_ctx *l = (level_ctx *)c;
    for (size_t i = b; i < e; i++) optr_keccak256_pair(l->src + 64 * i, l->src + 64 * i + 32, l->dst + 32 * i);
}

int optr_merkle_root(const uint8_t *leaves, size_t n, uint8_t out[32], int threads) {
    if (n == 0) { memset(out, 0, 32); return OPTR_OK; }
    if (n == 1) { memcpy(out, leaves, 32); return OPTR_OK; }
    /* Level by level. Where a level has an odd count, the missing right sibling is the root of
     * an all-padding subtree of that height (zero_h), which equals hashing the tree padded with
     * zero leaves to a power of two. Two buffers alternate so that threads never read a slot
     * another thread writes. */
    uint8_t zero_h[32];
    memset(zero_h, 0, 32);
    size_t cap = (n + 1) / 2;
    uint8_t *bufs[2];
    bufs[0] = (uint8_t *)malloc(32 * cap);
    bufs[1] = (uint8_t *)malloc(32 * ((cap + 1) / 2));
    if (!bufs[0] || !bufs[1]) { free(bufs[0]); free(bufs[1]); return OPTR_ENOMEM; }
    const uint8_t *src = leaves;
    size_t src_n = n;
    int which = 0;
    while (src_n > 1) {
        uint8_t *dst = bufs[which];
        size_t full = src_n / 2;
        level_ctx l = {src, dst};
        optr_parallel_for(full, optr_threads_for(full, threads, 8192), level_range, &l);
        if (src_n & 1) optr_keccak256_pair(src + 32 * (src_n - 1), zero_h, dst + 32 * full);
        optr_keccak256_pair(zero_h, zero_h, zero_h);
        src = dst;
        src_n = full + (src_n & 1);
        which ^= 1;
    }
    memcpy(out, src, 32);
    free(bufs[0]);
    free(bufs[1]);
    return OPTR_OK;
}

/* ---- EIP-712 orders ---- */
typedef struct {
    const uint8_t *domain, *typehash, *records;
    uint8_t *out;
} order_ctx;

static void order_range(void *c, size_t b, size_t e) {
    order_ctx *o = (order_ctx *)c;
    uint8_t body[32 + OPTR_ORDER_RECORD_SIZE];
    uint8_t outer[66];
    memcpy(body, o->typehash, 32);
    outer[0] = 0x19;
    outer[1] = 0x01;
    memcpy(outer + 2, o->domain, 32);
    for (size_t i = b; i < e; i++) {
        memcpy(body + 32, o->records + OPTR_ORDER_RECORD_SIZE * i, OPTR_ORDER_RECORD_SIZE);
        optr_keccak256(body, sizeof body, outer + 34);
        optr_keccak256(outer, sizeof outer, o->out + 32 * i);
    }
}

int optr_order_digests(const uint8_t domain[32], const uint8_t typehash[32],
                       const uint8_t *records, size_t n, uint8_t *out, int threads) {
    order_ctx o = {domain, typehash, records, out};
    return optr_parallel_for(n, optr_threads_for(n, threads, 2048), order_range, &o);
}

/* ---- secp256k1 recovery ---- */
static secp256k1_context *g_ctx;
static pthread_once_t g_ctx_once = PTHREAD_ONCE_INIT;

static void make_ctx(void) { g_ctx = secp256k1_context_create(SECP256K1_CONTEXT_VERIFY); }

/* group order n and n/2, big-endian */
static const uint8_t CURVE_N[32] = {
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
    0xBA, 0xAE, 0xDC, 0xE6, 0xAF, 0x48, 0xA0, 0x3B, 0xBF, 0xD2, 0x5E, 0x8C, 0xD0, 0x36, 0x41, 0x41};
static const uint8_t HALF_N[32] = {
    0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0x5D, 0x57, 0x6E, 0x73, 0x57, 0xA4, 0x50, 0x1D, 0xDF, 0xE9, 0x2F, 0x46, 0x68, 0x1B, 0x20, 0xA0};

static int is_zero32(const uint8_t *p) {
    uint8_t acc = 0;
    for (int i = 0; i < 32; i++) acc |= p[i];
    return acc == 0;
}

typedef struct {
    const uint8_t *digests, *sigs;
    uint8_t *addrs, *ok;
} rec_ctx;

static int recover_one(const uint8_t *digest, const uint8_t *sig, uint8_t addr[20]) {
    uint8_t v = sig[64];
    int recid;
    if (v == 27 || v == 28) recid = v - 27;
    else if (v == 0 || v == 1) recid = v;
    else return 0;
    const uint8_t *r = sig, *s = sig + 32;
    if (is_zero32(r) || is_zero32(s)) return 0;
    if (memcmp(r, CURVE_N, 32) >= 0) return 0;
    if (memcmp(s, HALF_N, 32) > 0) return 0; /* malleable high-s (also covers s >= n) */
    secp256k1_ecdsa_recoverable_signature rs;
    secp256k1_pubkey pk;
    if (!secp256k1_ecdsa_recoverable_signature_parse_compact(g_ctx, &rs, sig, recid)) return 0;
    if (!secp256k1_ecdsa_recover(g_ctx, &pk, &rs, digest)) return 0;
    uint8_t ser[65], h[32];
    size_t len = sizeof ser;
    secp256k1_ec_pubkey_serialize(g_ctx, ser, &len, &pk, SECP256K1_EC_UNCOMPRESSED);
    optr_keccak256(ser + 1, 64, h);
    memcpy(addr, h + 12, 20);
    return 1;
}

static void rec_range(void *c, size_t b, size_t e) {
    rec_ctx *x = (rec_ctx *)c;
    for (size_t i = b; i < e; i++) {
        x->ok[i] = (uint8_t)recover_one(x->digests + 32 * i, x->sigs + 65 * i, x->addrs + 20 * i);
        if (!x->ok[i]) memset(x->addrs + 20 * i, 0, 20);
    }
}

int optr_recover_many(const uint8_t *digests, const uint8_t *sigs, size_t n,
                      uint8_t *addrs, uint8_t *ok, int threads) {
    pthread_once(&g_ctx_once, make_ctx);
    if (!g_ctx) return OPTR_ECONTEXT;
    rec_ctx x = {digests, sigs, addrs, ok};
    return optr_parallel_for(n, optr_threads_for(n, threads, 64), rec_range, &x);
}
