/* threadpool.h - cpu_ref's thread pool.
 *
 * A small thread pool: the calling thread and n-1 workers run one parallel
 * job at a time. Workers spin briefly on a generation counter before
 * sleeping, since decode dispatches a job every few microseconds. Jobs share
 * their work out in chunks (next_chunk), and the caller does not wait for
 * workers that have not started: it closes the job when no work is left and
 * waits only for workers still inside it. On a machine whose other cores are
 * busy, a late worker then costs nothing (a version that waited for every
 * worker took 7 ms instead of 0.03 ms per token on the tiny model while a
 * compiler ran on the other core).
 *
 * Races. attention_worker writes only to att[thread] (its own scratch row:
 * thread indices are unique, the caller is 0) and to the output of the
 * (position, head) items next_chunk hands it, each item handed out once. A
 * worker's writes in a job happen before the caller returns from pool_run
 * (the worker leaves `active` after its last write; the caller waits for 0),
 * and the caller's writes before the next job's (the generation bump is a
 * release, the worker's read of it an acquire); a worker that read an older
 * generation enters only while that job is still open. A write-write race
 * in attention_worker once reported by ThreadSanitizer at 3 threads was not
 * reproduced on this pool: `make tsan` runs cpu_ref through conformance at 3
 * and 2 threads with every report fatal (clean in 5 runs at 3 threads), and
 * the same run reports a race at once when every thread shares att row 0.
 */
#ifndef CPU_REF_THREADPOOL_H
#define CPU_REF_THREADPOOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

typedef void (*job_fn)(void *arg, int thread, int n_threads);

typedef struct ThreadPool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_uint generation; // bumped for each job
    atomic_uint closed;     // the last job whose work is all done
    atomic_int active;      // workers inside the current job
    atomic_int sleeping;    // workers blocked on `wake`
    atomic_bool stop;
    job_fn fn;
    void *arg;
} ThreadPool;

typedef struct WorkerArg {
    ThreadPool *pool;
    int index;
} WorkerArg;

/* Start n_threads - 1 workers (the caller is thread 0). Fewer when the
 * system refuses a thread: n_threads then says how many there are. */
int pool_start(ThreadPool *pool, int n_threads);

/* Run fn(arg, t, n) for t = 0..n-1, t = 0 on the calling thread; returns
 * when all are done. */
void pool_run(ThreadPool *pool, job_fn fn, void *arg);

/* Work sharing: threads take chunks of `chunk` items from a shared counter
 * until none are left, so a thread the OS delays leaves its share to the
 * others instead of holding up the job. Returns the first item, or -1. */
int next_chunk(atomic_int *counter, int total, int chunk, int *end);

/* Join the workers and free the pool (a pool never started is fine). */
void pool_stop(ThreadPool *pool);

#endif
