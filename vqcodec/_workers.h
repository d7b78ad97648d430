/* vqcodec/_workers.h: one job on the calling thread and helper threads, for the
 * decoders of index coders 2 and 3 (_ctxcoder.c, _candcoder.c).
 *
 * The helpers are started with CPython's portable PyThread API and must touch
 * no Python object: the caller may (and should) have released the GIL. */
#ifndef VQCODEC_WORKERS_H
#define VQCODEC_WORKERS_H

#include <Python.h>
#include <pythread.h>

#define WORKERS_MAX 16

/* The counters through which the threads share a job's work (claim the next
 * item, count one done, read the count) */
#if defined(__GNUC__) || defined(__clang__)
#define CLAIM(counter) __atomic_fetch_add(&(counter), 1, __ATOMIC_RELAXED)
#define DONE(counter) __atomic_fetch_add(&(counter), 1, __ATOMIC_RELEASE)
#define COUNT(counter) __atomic_load_n(&(counter), __ATOMIC_ACQUIRE)
#define MAX_THREADS WORKERS_MAX
#else /* no atomics at hand: one thread */
#define CLAIM(counter) ((counter)++)
#define DONE(counter) ((counter)++)
#define COUNT(counter) (counter)
#define MAX_THREADS 1
#endif

/* The decoders' hot loops: also built for x86-64-v3 (BMI2, LZCNT) where the
 * machine has them, the clone chosen when the module loads */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && !defined(__clang__)
#define DECODER_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define DECODER_CLONES
#endif

typedef void (*worker_fn)(void *job, int who);

typedef struct {
    worker_fn fn;
    void *job;
    int who;
    PyThread_type_lock done; /* held until the helper has finished */
} WorkerHelper;

static void worker_main(void *arg)
{
    WorkerHelper *h = arg;
    h->fn(h->job, h->who);
    PyThread_release_lock(h->done);
}

/* fn(job, 0) on this thread and fn(job, 1), fn(job, 2), ... on up to want - 1
 * helpers (fewer when a thread cannot be started: the job must not depend on
 * how many run); returns once all have finished, with how many ran. */
static int run_workers(worker_fn fn, void *job, int want)
{
    WorkerHelper helpers[WORKERS_MAX];
    int started = 0;
    if (want > WORKERS_MAX)
        want = WORKERS_MAX;
    for (; started < want - 1; started++) {
        WorkerHelper *h = &helpers[started];
        h->fn = fn;
        h->job = job;
        h->who = started + 1;
        h->done = PyThread_allocate_lock();
        if (!h->done)
            break;
        PyThread_acquire_lock(h->done, WAIT_LOCK);
        if (PyThread_start_new_thread(worker_main, h) == PYTHREAD_INVALID_THREAD_ID) {
            PyThread_release_lock(h->done);
            PyThread_free_lock(h->done);
            break;
        }
    }
    fn(job, 0);
    for (int t = 0; t < started; t++) { /* wait for each helper */
        PyThread_acquire_lock(helpers[t].done, WAIT_LOCK);
        PyThread_release_lock(helpers[t].done);
        PyThread_free_lock(helpers[t].done);
    }
    return started + 1;
}

#endif
