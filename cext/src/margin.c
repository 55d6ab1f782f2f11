/* Margin sums over positions in 128-bit integers (see optr.h). */
#include "optr.h"

/* floor(a / b) for b > 0, as Python's // rounds (toward minus infinity). */
static inline __int128 floor_div(__int128 a, int64_t b) {
    __int128 q = a / b;
    if (a % b != 0 && a < 0) q -= 1;
    return q;
}

static inline int fits64(__int128 v) {
    return v >= INT64_MIN && v <= INT64_MAX;
}

int optr_margin_sums(int64_t collateral, const int64_t *q, const int64_t *rows, size_t n,
                     int64_t unit, int64_t out[3]) {
    if (unit <= 0) return OPTR_ERANGE;
    __int128 e = collateral, im = 0, mm = 0;
    for (size_t i = 0; i < n; i++) {
        const int64_t *r = rows + 4 * i; /* mark_lo, mark_hi, im, mm per contract */
        __int128 a = q[i];
        if (a >= 0) {
            e += floor_div(a * r[0], unit);
        } else {
            e += floor_div(a * r[1], unit);
            im -= floor_div(a * r[2], unit);
            mm -= floor_div(a * r[3], unit);
        }
        /* each term is below 2^126 in magnitude: a sum that stays within int64 after every
         * step never overflows the 128-bit accumulator */
        if (!fits64(e) || !fits64(im) || !fits64(mm)) return OPTR_ERANGE;
    }
    out[0] = (int64_t)e;
    out[1] = (int64_t)im;
    out[2] = (int64_t)mm;
    return OPTR_OK;
}
