#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include "optr.h"
#include "parallel.h"

#define OPTR_MAX_THREADS 64

typedef struct {
    optr_range_fn fn;
    void *ctx;
    size_t begin, end;
} job_t;

static void *run_job(void *arg) {
    job_t *j = (job_t *)arg;
    j->fn(j->ctx, j->begin, j->end);
    return NULL;
}

/* The online CPU count, asked once: glibc's sysconf(_SC_NPROCESSORS_ONLN) opens and reads
 * /sys/devices/system/cpu/online on every call, which cost more than hashing one order. */
static long online_cores = 1;
static pthread_once_t cores_once = PTHREAD_ONCE_INIT;

static void count_cores(void) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    online_cores = c < 1 ? 1 : c;
}

int optr_threads_for(size_t n, int requested, size_t min_per_thread) {
    size_t by_size = min_per_thread ? n / min_per_thread : n;
    if (by_size <= 1) return 1;  /* one thread whatever the machine has */
    long cores = requested;
    if (cores <= 0) {
        pthread_once(&cores_once, count_cores);
        cores = online_cores;
    }
    if (cores > OPTR_MAX_THREADS) cores = OPTR_MAX_THREADS;
    return (int)((size_t)cores < by_size ? (size_t)cores : by_size);
}

int optr_parallel_for(size_t n, int threads, optr_range_fn fn, void *ctx) {
    if (threads <= 1 || n < 2) {
        fn(ctx, 0, n);
        return OPTR_OK;
    }
    if ((size_t)threads > n) threads = (int)n;
    job_t jobs[OPTR_MAX_THREADS];
    pthread_t tids[OPTR_MAX_THREADS];
    size_t chunk = n / threads, extra = n % threads, at = 0;
    for (int t = 0; t < threads; t++) {
        size_t len = chunk + ((size_t)t < extra ? 1 : 0);
        jobs[t] = (job_t){fn, ctx, at, at + len};
        at += len;
    }
    /* Job 0 runs on the calling thread; a failed spawn runs its job inline, so the result is
     * always complete and a thread failure never leaves work undone. */
    int started[OPTR_MAX_THREADS] = {0};
    for (int t = 1; t < threads; t++)
        started[t] = pthread_create(&tids[t], NULL, run_job, &jobs[t]) == 0;
    run_job(&jobs[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t]) pthread_join(tids[t], NULL);
        else run_job(&jobs[t]);
    }
    return OPTR_OK;
}
