/* threadpool.c - cpu_ref's thread pool (see threadpool.h). */
#include "threadpool.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

static void *worker_main(void *p) {
    WorkerArg *wa = p;
    ThreadPool *pool = wa->pool;
    int index = wa->index;
    free(wa);
    unsigned seen = 0;
    for (;;) {
        /* Wait for a new generation: spin first, then sleep. */
        unsigned gen;
        int spins = 0;
        while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen) {
            if (atomic_load(&pool->stop)) return NULL;
            if (++spins < 20000) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
                continue;
            }
            pthread_mutex_lock(&pool->lock);
            atomic_fetch_add(&pool->sleeping, 1);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->lock);
            atomic_fetch_sub(&pool->sleeping, 1);
            pthread_mutex_unlock(&pool->lock);
            spins = 0;
        }
        seen = gen;
        if (atomic_load(&pool->stop)) return NULL;
        /* Enter, then check the job is still open: with the caller's
         * "close, then count who is inside" (both sequentially consistent),
         * either we see it closed, or the caller sees us and waits. */
        atomic_fetch_add(&pool->active, 1);
        if ((int)(atomic_load(&pool->closed) - gen) < 0) pool->fn(pool->arg, index, pool->n_threads);
        atomic_fetch_sub(&pool->active, 1);
    }
}

int pool_start(ThreadPool *pool, int n_threads) {
    memset(pool, 0, sizeof *pool);
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->threads = calloc((size_t)n_threads, sizeof *pool->threads);
    if (!pool->threads) return -1;
    for (int i = 1; i < n_threads; i++) {
        WorkerArg *wa = malloc(sizeof *wa);
        if (!wa) return -1;
        *wa = (WorkerArg){pool, i};
        if (pthread_create(&pool->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            pool->n_threads = i; /* run with the workers we have */
            break;
        }
    }
    return 0;
}

void pool_run(ThreadPool *pool, job_fn fn, void *arg) {
    if (pool->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    pthread_mutex_lock(&pool->lock);
    unsigned gen = atomic_fetch_add(&pool->generation, 1) + 1;
    if (atomic_load(&pool->sleeping) > 0) pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    fn(arg, 0, pool->n_threads); /* returns when no chunk is left */
    atomic_store(&pool->closed, gen);
    /* Wait for workers still finishing a chunk (they are running, so briefly). */
    for (int spins = 0; atomic_load(&pool->active) > 0; spins++) {
        if (spins > 1000) sched_yield();
#if defined(__x86_64__) || defined(__i386__)
        else __builtin_ia32_pause();
#endif
    }
}

int next_chunk(atomic_int *counter, int total, int chunk, int *end) {
    int begin = atomic_fetch_add_explicit(counter, chunk, memory_order_relaxed);
    if (begin >= total) return -1;
    *end = begin + chunk < total ? begin + chunk : total;
    return begin;
}

void pool_stop(ThreadPool *pool) {
    if (!pool->threads) return;
    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->stop, true);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 1; i < pool->n_threads; i++) pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
    pool->threads = NULL;
}
