/* A tiny fork-join helper: run fn(ctx, begin, end) over [0, n) split across threads. */
#ifndef OPTR_PARALLEL_H
#define OPTR_PARALLEL_H
#include <stddef.h>
typedef void (*optr_range_fn)(void *ctx, size_t begin, size_t end);
int optr_parallel_for(size_t n, int threads, optr_range_fn fn, void *ctx);
void optr_keccak256_pair(const unsigned char a[32], const unsigned char b[32], unsigned char out[32]);
#endif
