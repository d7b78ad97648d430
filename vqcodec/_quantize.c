/* vqcodec._quantize: the loops of vqcodec/quantize.py -- the nearest-codeword
 * search, Lloyd's iterations, the box splits and the error diffusion of
 * dithering (each below has its note).
 *
 * quantize.py defines the search (squared Euclidean distance, ties to the
 * lowest index) and keeps a numpy version (matrix products, then argmin);
 * this file finds the same nearest centre of each point in one pass, without
 * the points x centres matrix: the centres are laid out channel by channel
 * in blocks of 8, and each point's distances to a block are computed and
 * compared lane by lane (the loops vectorise, with AVX2 where the CPU has
 * it).  Distances are float32, (x - c)^2 summed over the channels in channel
 * order.  The function releases the GIL while it loops.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#define LANES 8
#define MAX_DIM 4

#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && !defined(__clang__)
#define SEARCH_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SEARCH_CLONES
#endif

/* An index with a key, for sorting by key with ties to the lower index (as
 * numpy's stable argsort does): by_key_up ascending, by_key_down descending. */
typedef struct {
    double key;
    Py_ssize_t i;
} Keyed;

static int by_key_up(const void *pa, const void *pb)
{
    const Keyed *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

static int by_key_down(const void *pa, const void *pb)
{
    const Keyed *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key > b->key ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

typedef float vf __attribute__((vector_size(4 * LANES)));
typedef int32_t vi __attribute__((vector_size(4 * LANES)));

/* The nearest centre of one point (ties to the lowest index) and its squared
 * distance; with want_second (a constant where it is inlined) also the second
 * smallest squared distance, float32. */
static inline __attribute__((always_inline)) int32_t search2(const float *point, const int dim,
                                                             const vf *blocks, Py_ssize_t nblocks,
                                                             const int want_second, float *best_out,
                                                             float *second_out)
{
    vi step, here;
    for (int l = 0; l < LANES; l++) {
        step[l] = LANES;
        here[l] = l;
    }
    vf x[MAX_DIM];
    for (int j = 0; j < dim; j++)
        x[j] = (vf){0} + point[j];
    vf best = (vf){0} + __builtin_inff(), second = best;
    vi which = here - here;
    for (Py_ssize_t b = 0; b < nblocks; b++) {
        const vf *c = blocks + b * dim;
        vf t = x[0] - c[0], d = t * t;
        for (int j = 1; j < dim; j++) {
            t = x[j] - c[j];
            d += t * t;
        }
        vi nearer = d < best; /* strictly: the first (lowest) index wins */
        if (want_second) {
            vf larger = (vf)(((vi)best & nearer) | ((vi)d & ~nearer)); /* max(best, d), best on a tie */
            vi second_nearer = larger < second;
            second = (vf)(((vi)larger & second_nearer) | ((vi)second & ~second_nearer));
        }
        which = (here & nearer) | (which & ~nearer);
        best = (vf)(((vi)d & nearer) | ((vi)best & ~nearer));
        here += step;
    }
    int lane = 0;
    for (int l = 1; l < LANES; l++)
        if (best[l] < best[lane] || (best[l] == best[lane] && which[l] < which[lane]))
            lane = l;
    *best_out = best[lane];
    if (want_second) {
        float s = second[lane];
        for (int l = 0; l < LANES; l++)
            if (l != lane && best[l] < s)
                s = best[l];
        *second_out = s;
    }
    return which[lane];
}

/* The blocks of centres are read as vf (Ward's below as vd): 32-byte vectors,
 * which the compiler may load with instructions that fault unless the address
 * is a multiple of 32 (vmovaps in the AVX2 clones: so at -O0, as debug and
 * sanitizer builds are; the optimised build folds the loads into arithmetic,
 * which needs no alignment, and hid it).  PyMem_Malloc promises 16 only: the
 * memory is asked for 32 bytes larger, used from the first multiple of 32 in
 * it, and freed through the pointer it came from. */
static inline void *aligned32(void *p)
{
    return p ? (void *)(((uintptr_t)p + 31) & ~(uintptr_t)31) : NULL;
}

static void fill_blocks(vf *blocks, const double *c, Py_ssize_t k, int dim)
{
    Py_ssize_t nblocks = (k + LANES - 1) / LANES;
    for (Py_ssize_t i = 0; i < nblocks * LANES; i++) /* padding: a centre no point is nearer to */
        for (int j = 0; j < dim; j++)
            blocks[(i / LANES) * dim + j][i % LANES] = i < k ? (float)c[i * dim + j] : 3.0e18f;
}

/* centres: blocks of LANES, each block dim rows of LANES floats (padding: far away) */
static inline __attribute__((always_inline)) void search(const float *points, Py_ssize_t n, const int dim,
                                                         const vf *blocks, Py_ssize_t nblocks,
                                                         int64_t *labels)
{
    float best, unused;
    for (Py_ssize_t p = 0; p < n; p++)
        labels[p] = search2(points + p * dim, dim, blocks, nblocks, 0, &best, &unused);
}

SEARCH_CLONES
static void search_any(const float *points, Py_ssize_t n, int dim, const vf *blocks, Py_ssize_t nblocks,
                       int64_t *labels)
{
    switch (dim) {
    case 1: search(points, n, 1, blocks, nblocks, labels); break;
    case 2: search(points, n, 2, blocks, nblocks, labels); break;
    case 3: search(points, n, 3, blocks, nblocks, labels); break;
    default: search(points, n, 4, blocks, nblocks, labels); break;
    }
}

/* nearest(points, centres, dim, labels) -> None
 *
 * points: n * dim float32; centres: k * dim float64 (k >= 1, searched as
 * float32); labels: a writable buffer of n int64, each set to its point's
 * nearest centre. */
static PyObject *nearest(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer pts, cen, out;
    int dim;
    if (!PyArg_ParseTuple(args, "y*y*iw*", &pts, &cen, &dim, &out))
        return NULL;
    PyObject *result = NULL;
    void *blocks_mem = NULL; /* blocks: 32-byte aligned within it */
    Py_ssize_t row = (Py_ssize_t)sizeof(float) * dim, crow = (Py_ssize_t)sizeof(double) * dim;
    if (dim < 1 || dim > MAX_DIM || pts.len % row || cen.len % crow || cen.len == 0
        || out.len != pts.len / row * (Py_ssize_t)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "nearest: buffer sizes do not match");
        goto done;
    }
    Py_ssize_t n = pts.len / row, k = cen.len / crow, nblocks = (k + LANES - 1) / LANES;
    blocks_mem = PyMem_Malloc((size_t)(nblocks * dim) * sizeof(vf) + 32);
    if (!blocks_mem) {
        PyErr_NoMemory();
        goto done;
    }
    vf *blocks = aligned32(blocks_mem);
    fill_blocks(blocks, cen.buf, k, dim);
    Py_BEGIN_ALLOW_THREADS
    search_any(pts.buf, n, dim, blocks, nblocks, out.buf);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_Free(blocks_mem);
    PyBuffer_Release(&pts);
    PyBuffer_Release(&cen);
    PyBuffer_Release(&out);
    return result;
}

/* ------------------------------------------------------------------------
 * Lloyd's iterations (quantize._lloyd), with Hamerly's bounds.
 *
 * Each iteration assigns every point its nearest centre (the float32 search
 * above, from the float64 centres rounded to float32), then moves every
 * centre with points to their weighted mean (float64 sums in point order,
 * as numpy's bincount makes them).  Hamerly (2010): a point keeps an upper
 * bound u on the distance to its centre and a lower bound l on the distance
 * to any other; when the centres move by d, u grows by its centre's d and l
 * shrinks by the largest other d.  A point whose u is at most max(l, half the
 * distance from its centre to the nearest other centre) cannot have changed
 * centre and is not searched; after the first iterations that is most of
 * them.  Empty clusters are re-seeded with the worst-fitting points as in
 * quantize._lloyd, after which every point is searched again. */

/* relative slack on the bounds, for the float32 distances they come from */
#define SLACK 1e-6

typedef struct {
    Py_ssize_t n, k;
    int dim;
    const double *x, *w;
    const float *x32;
    double *c; /* k * dim, updated in place */
    int32_t *label;
    double *upper, *lower;
    double *weight, *sums, *moved, *half;
    double *old;
    vf *blocks;
} Lloyd;

/* Points first .. last - 1: each keeps its centre if its bounds allow, else
 * is searched (and gets fresh bounds). */
SEARCH_CLONES
static void assign_pass(Lloyd *L, int everyone, Py_ssize_t first, Py_ssize_t last)
{
    const int dim = L->dim;
    Py_ssize_t nblocks = (L->k + LANES - 1) / LANES;
    for (Py_ssize_t i = first; i < last; i++) {
        int32_t a = L->label[i];
        if (!everyone) {
            double m = L->lower[i] > L->half[a] ? L->lower[i] : L->half[a];
            if (L->upper[i] <= m)
                continue;
            double u = 0; /* tighten the upper bound: the distance to its centre */
            for (int j = 0; j < dim; j++) {
                float t = L->x32[i * dim + j] - (float)L->c[a * dim + j];
                u += (double)(t * t);
            }
            L->upper[i] = sqrt(u) * (1 + SLACK);
            if (L->upper[i] <= m)
                continue;
        }
        float best, second;
        switch (dim) {
        case 1: L->label[i] = search2(L->x32 + i, 1, L->blocks, nblocks, 1, &best, &second); break;
        case 2: L->label[i] = search2(L->x32 + 2 * i, 2, L->blocks, nblocks, 1, &best, &second); break;
        case 3: L->label[i] = search2(L->x32 + 3 * i, 3, L->blocks, nblocks, 1, &best, &second); break;
        default: L->label[i] = search2(L->x32 + 4 * i, 4, L->blocks, nblocks, 1, &best, &second); break;
        }
        L->upper[i] = sqrt((double)best) * (1 + SLACK);
        L->lower[i] = sqrt((double)second) * (1 - SLACK);
    }
}

/* half[j]: half the distance from centre j to the nearest other centre (the
 * float32 search of the centres themselves: the second nearest is the
 * nearest other, 0 for a duplicate) */
SEARCH_CLONES
static void half_gaps(Lloyd *L)
{
    Py_ssize_t nblocks = (L->k + LANES - 1) / LANES;
    float point[MAX_DIM], best, second;
    for (Py_ssize_t a = 0; a < L->k; a++) {
        for (int j = 0; j < L->dim; j++)
            point[j] = (float)L->c[a * L->dim + j];
        switch (L->dim) {
        case 1: search2(point, 1, L->blocks, nblocks, 1, &best, &second); break;
        case 2: search2(point, 2, L->blocks, nblocks, 1, &best, &second); break;
        case 3: search2(point, 3, L->blocks, nblocks, 1, &best, &second); break;
        default: search2(point, 4, L->blocks, nblocks, 1, &best, &second); break;
        }
        L->half[a] = L->k > 1 ? 0.5 * sqrt((double)second) * (1 - SLACK) : INFINITY;
    }
}

typedef struct {
    Lloyd *L;
    int everyone;
    Py_ssize_t first, last;
    PyThread_type_lock done;
} Share;

static void assign_share(void *arg)
{
    Share *share = arg;
    assign_pass(share->L, share->everyone, share->first, share->last);
    PyThread_release_lock(share->done);
}

/* assign_pass over all the points, on two threads when there are many (each
 * point's result depends on that point alone: the same either way) */
static void assign_all(Lloyd *L, int everyone, PyThread_type_lock done)
{
    Py_ssize_t half = L->n / 2;
    if (done && L->n >= 4096) {
        Share share = {L, everyone, half, L->n, done};
        PyThread_acquire_lock(done, WAIT_LOCK);
        if (PyThread_start_new_thread(assign_share, &share) != PYTHREAD_INVALID_THREAD_ID) {
            assign_pass(L, everyone, 0, half);
            PyThread_acquire_lock(done, WAIT_LOCK); /* the helper has finished */
            PyThread_release_lock(done);
            return;
        }
        PyThread_release_lock(done);
    }
    assign_pass(L, everyone, 0, L->n);
}

/* lloyd(x, w, centroids, dim, iters, tol) -> bytes of the centroids (float64)
 *
 * x: n * dim float64, w: n float64, centroids: k * dim float64.  The result
 * holds k or fewer centroids (fewer when every point sits on a centroid and
 * clusters stay empty, as quantize._lloyd drops them). */
static PyObject *lloyd(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer xb, wb, cb;
    int dim, iters;
    double tol;
    if (!PyArg_ParseTuple(args, "y*y*y*iid", &xb, &wb, &cb, &dim, &iters, &tol))
        return NULL;
    PyObject *result = NULL;
    Lloyd L;
    memset(&L, 0, sizeof L);
    float *x32 = NULL;
    Keyed *worst = NULL; /* the points by decreasing error (a stable argsort of -err) */
    void *blocks_mem = NULL; /* L.blocks: 32-byte aligned within it */
    PyThread_type_lock done = NULL;
    Py_ssize_t row = (Py_ssize_t)sizeof(double) * dim;
    if (dim < 1 || dim > MAX_DIM || xb.len % row || cb.len % row || cb.len == 0
        || wb.len != xb.len / dim) {
        PyErr_SetString(PyExc_ValueError, "lloyd: buffer sizes do not match");
        goto done;
    }
    L.n = xb.len / row;
    L.k = cb.len / row;
    L.dim = dim;
    L.x = xb.buf;
    L.w = wb.buf;
    Py_ssize_t n = L.n, k = L.k, nblocks = (k + LANES - 1) / LANES;
    x32 = PyMem_Malloc((size_t)(n * dim + 1) * sizeof(float));
    L.c = PyMem_Malloc((size_t)(k * dim) * sizeof(double));
    L.old = PyMem_Malloc((size_t)(k * dim) * sizeof(double));
    L.label = PyMem_Calloc((size_t)n + 1, sizeof(int32_t));
    L.upper = PyMem_Malloc((size_t)(n + 1) * sizeof(double));
    L.lower = PyMem_Malloc((size_t)(n + 1) * sizeof(double));
    L.weight = PyMem_Malloc((size_t)k * sizeof(double));
    L.sums = PyMem_Malloc((size_t)(k * dim) * sizeof(double));
    L.moved = PyMem_Malloc((size_t)k * sizeof(double));
    L.half = PyMem_Malloc((size_t)k * sizeof(double));
    blocks_mem = PyMem_Malloc((size_t)(nblocks * dim) * sizeof(vf) + 32);
    L.blocks = aligned32(blocks_mem);
    worst = PyMem_Malloc((size_t)(n + 1) * sizeof(Keyed));
    if (!x32 || !L.c || !L.old || !L.label || !L.upper || !L.lower || !L.weight || !L.sums || !L.moved
        || !L.half || !L.blocks || !worst) {
        PyErr_NoMemory();
        goto done;
    }
    L.x32 = x32;
    memcpy(L.c, cb.buf, (size_t)cb.len);
    done = PyThread_allocate_lock(); /* NULL: one thread */
    Py_BEGIN_ALLOW_THREADS
    double xq = 0; /* sum of w * |x|^2, in point order */
    for (Py_ssize_t i = 0; i < n; i++) {
        double q = 0;
        for (int j = 0; j < dim; j++) {
            x32[i * dim + j] = (float)L.x[i * dim + j];
            q += L.x[i * dim + j] * L.x[i * dim + j];
        }
        xq += L.w[i] * q;
    }
    double prev = INFINITY;
    int everyone = 1;
    for (int it = 0; it < iters; it++) {
        fill_blocks(L.blocks, L.c, k, dim);
        if (!everyone)
            half_gaps(&L);
        assign_all(&L, everyone, done);
        everyone = 0;
        memset(L.weight, 0, (size_t)k * sizeof(double));
        memset(L.sums, 0, (size_t)(k * dim) * sizeof(double));
        for (Py_ssize_t i = 0; i < n; i++) {
            int32_t a = L.label[i];
            L.weight[a] += L.w[i];
            for (int j = 0; j < dim; j++)
                L.sums[a * dim + j] += L.w[i] * L.x[i * dim + j];
        }
        memcpy(L.old, L.c, (size_t)(k * dim) * sizeof(double));
        double fit = 0;
        Py_ssize_t empty = 0;
        for (Py_ssize_t a = 0; a < k; a++) {
            if (L.weight[a] > 0) {
                for (int j = 0; j < dim; j++) {
                    L.c[a * dim + j] = L.sums[a * dim + j] / L.weight[a];
                    fit += L.sums[a * dim + j] * L.c[a * dim + j];
                }
            } else {
                empty++;
            }
        }
        double sse = xq - fit;
        if (empty) { /* the worst-fitting points become the empty clusters' centroids */
            Py_ssize_t count = 0;
            for (Py_ssize_t i = 0; i < n; i++) {
                int32_t a = L.label[i];
                double e = 0;
                for (int j = 0; j < dim; j++) {
                    double t = L.x[i * dim + j] - L.c[a * dim + j];
                    e += t * t;
                }
                e *= L.w[i];
                if (e > 0) {
                    worst[count].key = e;
                    worst[count++].i = i;
                }
            }
            qsort(worst, (size_t)count, sizeof *worst, by_key_down);
            Py_ssize_t filled = 0, kept = 0;
            for (Py_ssize_t a = 0; a < k; a++) {
                if (L.weight[a] > 0 || filled < count) {
                    if (!(L.weight[a] > 0)) {
                        memcpy(L.c + a * dim, L.x + worst[filled].i * dim, (size_t)dim * sizeof(double));
                        filled++;
                    }
                    if (kept != a)
                        memcpy(L.c + kept * dim, L.c + a * dim, (size_t)dim * sizeof(double));
                    kept++;
                }
            }
            everyone = 1; /* centres jumped: search every point again */
            if (kept < k) { /* every point sits on a centroid: drop the rest, stop */
                k = kept;
                break;
            }
            prev = sse;
            continue;
        }
        if (prev - sse <= tol * sse)
            break;
        prev = sse;
        /* the bounds follow the centres */
        double top = 0, next = 0;
        Py_ssize_t top_at = -1;
        for (Py_ssize_t a = 0; a < k; a++) {
            double d = 0;
            for (int j = 0; j < dim; j++) {
                double t = L.c[a * dim + j] - L.old[a * dim + j];
                d += t * t;
            }
            L.moved[a] = sqrt(d) * (1 + 1e-12) + 1e-9; /* a little slack for rounding */
            if (L.moved[a] > top) {
                next = top;
                top = L.moved[a];
                top_at = a;
            } else if (L.moved[a] > next) {
                next = L.moved[a];
            }
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            int32_t a = L.label[i];
            L.upper[i] += L.moved[a];
            L.lower[i] -= a == top_at ? next : top;
        }
    }
    Py_END_ALLOW_THREADS
    result = PyBytes_FromStringAndSize((const char *)L.c, (Py_ssize_t)(k * dim) * (Py_ssize_t)sizeof(double));
done:
    PyMem_Free(x32);
    PyMem_Free(L.c);
    PyMem_Free(L.old);
    PyMem_Free(L.label);
    PyMem_Free(L.upper);
    PyMem_Free(L.lower);
    PyMem_Free(L.weight);
    PyMem_Free(L.sums);
    PyMem_Free(L.moved);
    PyMem_Free(L.half);
    PyMem_Free(blocks_mem);
    PyMem_Free(worst);
    if (done)
        PyThread_free_lock(done);
    PyBuffer_Release(&xb);
    PyBuffer_Release(&wb);
    PyBuffer_Release(&cb);
    return result;
}

/* ------------------------------------------------------------------------
 * Box splitting (quantize._split), the same arithmetic in the same order.
 *
 * Rounds: every box with positive error (the largest first when fewer cuts
 * remain) is cut across its axis of largest variance where the two halves'
 * total squared error is smallest, between positions ordered by the integer
 * part of the coordinate (stable counting sorts).  Every sum is taken in the
 * order numpy takes it (bincount: point order; cumsum: one running sum over
 * all the boxes' points, a half's sums being differences of it), so the
 * result is numpy's, bit for bit (the tests compare them). */

/* split(x, w, dim, target, labels) -> number of boxes
 *
 * x: n * dim float64 (values in [0, 255] are cut by their integer part), w: n
 * float64, labels: writable n int64 (each point's box, from 0). */
static PyObject *split(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer xb, wb, lb;
    int dim;
    Py_ssize_t target;
    if (!PyArg_ParseTuple(args, "y*y*inw*", &xb, &wb, &dim, &target, &lb))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t row = (Py_ssize_t)sizeof(double) * dim, n = dim >= 1 ? xb.len / row : 0;
    uint8_t *xi = NULL, *frozen = NULL, *v = NULL;
    double *wx = NULL, *wq = NULL, *wqt = NULL, *box_w = NULL, *box_s = NULL, *var = NULL, *cum = NULL;
    Py_ssize_t *rank = NULL, *sel = NULL, *tmp = NULL, *starts = NULL, *cut = NULL;
    int *axis = NULL;
    Keyed *cand = NULL; /* boxes by decreasing error */
    if (dim < 1 || dim > MAX_DIM || xb.len % row || wb.len != n * (Py_ssize_t)sizeof(double)
        || lb.len != n * (Py_ssize_t)sizeof(int64_t) || target < 1) {
        PyErr_SetString(PyExc_ValueError, "split: buffer sizes do not match");
        goto done;
    }
    Py_ssize_t cap = target + 1; /* boxes */
    xi = PyMem_Malloc((size_t)(n * dim + 1));
    v = PyMem_Malloc((size_t)n + 1);
    wx = PyMem_Malloc((size_t)(n * dim + 1) * sizeof(double));
    wq = PyMem_Malloc((size_t)(n * dim + 1) * sizeof(double));
    wqt = PyMem_Malloc((size_t)(n + 1) * sizeof(double));
    cum = PyMem_Malloc((size_t)(n + 1) * (size_t)(2 + dim) * sizeof(double));
    box_w = PyMem_Malloc((size_t)cap * sizeof(double));
    box_s = PyMem_Malloc((size_t)cap * 2 * dim * sizeof(double));
    var = PyMem_Malloc((size_t)cap * dim * sizeof(double));
    frozen = PyMem_Calloc((size_t)cap, 1);
    rank = PyMem_Malloc((size_t)cap * sizeof(Py_ssize_t));
    axis = PyMem_Malloc((size_t)cap * sizeof(int));
    cand = PyMem_Malloc((size_t)cap * sizeof(Keyed));
    sel = PyMem_Malloc((size_t)(n + 1) * sizeof(Py_ssize_t));
    tmp = PyMem_Malloc((size_t)(n + 1) * sizeof(Py_ssize_t));
    starts = PyMem_Malloc((size_t)(cap + 1) * sizeof(Py_ssize_t));
    cut = PyMem_Malloc((size_t)(cap + 1) * sizeof(Py_ssize_t));
    if (!xi || !v || !wx || !wq || !wqt || !cum || !box_w || !box_s || !var || !frozen || !rank || !axis
        || !cand || !sel || !tmp || !starts || !cut) {
        PyErr_NoMemory();
        goto done;
    }
    const double *x = xb.buf, *w = wb.buf;
    int64_t *labels = lb.buf;
    Py_ssize_t m = 1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        double total = 0;
        for (int j = 0; j < dim; j++) {
            double value = x[i * dim + j];
            double clipped = value < 0 ? 0 : value > 255 ? 255 : value;
            xi[i * dim + j] = (uint8_t)clipped;
            wx[j * n + i] = w[i] * value;
            wq[j * n + i] = wx[j * n + i] * value;
        }
        for (int j = 0; j < dim; j++) /* np.sum over the channels: in channel order */
            total = j ? total + wq[j * n + i] : wq[i];
        wqt[i] = total;
        labels[i] = 0;
    }
    while (m < target) {
        memset(box_w, 0, (size_t)m * sizeof(double));
        memset(box_s, 0, (size_t)m * 2 * dim * sizeof(double));
        for (Py_ssize_t i = 0; i < n; i++) { /* bincount: in point order */
            Py_ssize_t b = (Py_ssize_t)labels[i];
            box_w[b] += w[i];
            for (int j = 0; j < dim; j++) {
                box_s[(b * dim + j) * 2] += wx[j * n + i];
                box_s[(b * dim + j) * 2 + 1] += wq[j * n + i];
            }
        }
        double top = 0;
        for (Py_ssize_t b = 0; b < m; b++) {
            double sse = 0, weight = box_w[b] > 1e-300 ? box_w[b] : 1e-300;
            for (int j = 0; j < dim; j++) {
                double s1 = box_s[(b * dim + j) * 2], s2 = box_s[(b * dim + j) * 2 + 1];
                var[b * dim + j] = s2 - s1 * s1 / weight;
                sse = j ? sse + var[b * dim + j] : var[b * dim];
            }
            int a = 0;
            for (int j = 1; j < dim; j++)
                if (var[b * dim + j] > var[b * dim + a])
                    a = j;
            axis[b] = a;
            cand[b].key = sse;
            cand[b].i = b;
            if (b == 0 || sse > top)
                top = sse;
        }
        double threshold = 1e-9 * (top > 1.0 ? top : 1.0);
        Py_ssize_t count = 0;
        for (Py_ssize_t b = 0; b < m; b++)
            if (cand[b].key > threshold && !frozen[b])
                cand[count++] = cand[b];
        if (!count)
            break;
        qsort(cand, (size_t)count, sizeof *cand, by_key_down);
        if (count > target - m)
            count = target - m;
        for (Py_ssize_t b = 0; b < m; b++)
            rank[b] = -1;
        for (Py_ssize_t r = 0; r < count; r++)
            rank[cand[r].i] = r;
        /* the candidates' points by box rank, then by v, then by index: two
         * stable counting sorts (by v, then by rank) */
        Py_ssize_t ns = 0, hist[257];
        memset(hist, 0, sizeof hist);
        for (Py_ssize_t i = 0; i < n; i++)
            if (rank[labels[i]] >= 0) {
                uint8_t value = xi[i * dim + axis[labels[i]]];
                hist[value + 1]++;
                tmp[ns++] = i;
            }
        for (int b = 0; b < 256; b++)
            hist[b + 1] += hist[b];
        for (Py_ssize_t t = 0; t < ns; t++) {
            Py_ssize_t i = tmp[t];
            sel[hist[xi[i * dim + axis[labels[i]]]]++] = i;
        }
        for (Py_ssize_t r = 0; r <= count; r++)
            starts[r] = 0;
        for (Py_ssize_t t = 0; t < ns; t++)
            starts[rank[labels[sel[t]]] + 1]++;
        for (Py_ssize_t r = 0; r < count; r++)
            starts[r + 1] += starts[r];
        for (Py_ssize_t r = 0; r <= count; r++)
            cut[r] = starts[r];
        for (Py_ssize_t t = 0; t < ns; t++) {
            Py_ssize_t i = sel[t];
            tmp[cut[rank[labels[i]]]++] = i;
        }
        Py_ssize_t *order = tmp;
        /* running sums over all of them (numpy's cumsum): w, wqt, wx[j] */
        double *cw = cum, *cq = cum + ns, *cx = cum + 2 * ns;
        double aw = 0, aq = 0, ax[MAX_DIM] = {0, 0, 0, 0};
        for (Py_ssize_t t = 0; t < ns; t++) {
            Py_ssize_t i = order[t];
            cw[t] = aw = t ? aw + w[i] : w[i];
            cq[t] = aq = t ? aq + wqt[i] : wqt[i];
            for (int j = 0; j < dim; j++)
                cx[j * ns + t] = ax[j] = t ? ax[j] + wx[j * n + i] : wx[j * n + i];
            v[t] = xi[i * dim + axis[labels[i]]];
        }
        Py_ssize_t made = 0;
        for (Py_ssize_t r = 0; r < count; r++) {
            Py_ssize_t first = starts[r], last = starts[r + 1] - 1, at = -1;
            double best = INFINITY;
            for (Py_ssize_t t = first; t < last; t++) {
                if (!(v[t] < v[t + 1]))
                    continue;
                double lw = cw[t] - (first ? cw[first - 1] : 0.0), rw = cw[last] - cw[t];
                if (!(lw > 0) || !(rw > 0))
                    continue;
                double lq = cq[t] - (first ? cq[first - 1] : 0.0), rq = cq[last] - cq[t];
                double cost = lq + rq;
                for (int j = 0; j < dim; j++) {
                    const double *c = cx + j * ns;
                    double lx = c[t] - (first ? c[first - 1] : 0.0), rx = c[last] - c[t];
                    cost -= lx * lx / lw + rx * rx / rw;
                }
                if (cost < best) { /* the first position of the smallest cost */
                    best = cost;
                    at = t;
                }
            }
            if (at < 0 || !isfinite(best)) {
                frozen[cand[r].i] = 1;
                continue;
            }
            Py_ssize_t id = m + made++;
            frozen[id] = 0;
            for (Py_ssize_t t = at + 1; t <= last; t++)
                labels[order[t]] = id;
        }
        m += made;
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(m);
done:
    PyMem_Free(xi);
    PyMem_Free(v);
    PyMem_Free(wx);
    PyMem_Free(wq);
    PyMem_Free(wqt);
    PyMem_Free(cum);
    PyMem_Free(box_w);
    PyMem_Free(box_s);
    PyMem_Free(var);
    PyMem_Free(frozen);
    PyMem_Free(rank);
    PyMem_Free(axis);
    PyMem_Free(cand);
    PyMem_Free(sel);
    PyMem_Free(tmp);
    PyMem_Free(starts);
    PyMem_Free(cut);
    PyBuffer_Release(&xb);
    PyBuffer_Release(&wb);
    PyBuffer_Release(&lb);
    return result;
}

/* ------------------------------------------------------------------------
 * Distinct RGB colours (quantize._distinct for 3 channels).
 *
 * A bitmap of the 2^24 keys (R << 16 | G << 8 | B) is marked; a key's rank
 * among the marked ones is the running count of set bits before its block
 * of 8 words plus those before it in the block.  numpy's level-by-level
 * tables give the same result, but their pages are touched sparsely, and in
 * a fresh process (every 'vqcodec encode') the page faults are most of their
 * cost; the bitmap is 2 MiB, asked for as one huge page. */

static uint64_t *key_bitmap(void **base)
{
    size_t size = (size_t)1 << 21;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    void *p = NULL;
    if (posix_memalign(&p, size, size) == 0) {
        madvise(p, size, MADV_HUGEPAGE);
        memset(p, 0, size);
        *base = p;
        return p;
    }
#endif
    *base = calloc(1, size);
    return *base;
}

/* Mark the keys, count them, and give every pixel its key's rank; the number
 * of distinct keys.  (POPCNT where the CPU has it.) */
SEARCH_CLONES
static uint32_t mark_and_rank(const uint8_t *p, Py_ssize_t n, uint64_t *bits, uint32_t *before, int32_t *ids)
{
    const size_t blocks = ((size_t)1 << 18) / 8;
    uint32_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t key = (uint32_t)p[3 * i] << 16 | (uint32_t)p[3 * i + 1] << 8 | p[3 * i + 2];
        bits[key >> 6] |= (uint64_t)1 << (key & 63);
    }
    for (size_t b = 0; b < blocks; b++) {
        before[b] = total;
        for (int j = 0; j < 8; j++)
            total += (uint32_t)__builtin_popcountll(bits[8 * b + j]);
    }
    uint32_t last_key = 0xffffffffu;
    int32_t last_id = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t key = (uint32_t)p[3 * i] << 16 | (uint32_t)p[3 * i + 1] << 8 | p[3 * i + 2];
        if (key != last_key) { /* neighbouring pixels are often the same colour */
            size_t w = key >> 6;
            uint32_t rank = before[w >> 3]
                            + (uint32_t)__builtin_popcountll(bits[w] & (((uint64_t)1 << (key & 63)) - 1));
            for (size_t j = w & ~(size_t)7; j < w; j++)
                rank += (uint32_t)__builtin_popcountll(bits[j]);
            last_key = key;
            last_id = (int32_t)rank;
        }
        ids[i] = last_id;
    }
    return total;
}

/* distinct3(pixels, ids) -> (colours, counts)
 *
 * pixels: n * 3 bytes; ids: a writable buffer of n int32, each pixel's colour
 * id.  colours: the distinct colours in key order (3 bytes each); counts:
 * their pixel counts (int64). */
static PyObject *distinct3(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer pix, out;
    if (!PyArg_ParseTuple(args, "y*w*", &pix, &out))
        return NULL;
    PyObject *result = NULL, *colours = NULL, *counts = NULL;
    void *base = NULL;
    uint64_t *bits = NULL;
    uint32_t *before = NULL;
    Py_ssize_t n = pix.len / 3;
    if (pix.len % 3 || out.len != n * 4) {
        PyErr_SetString(PyExc_ValueError, "distinct3: buffer sizes do not match");
        goto done;
    }
    const size_t words = (size_t)1 << 18, blocks = words / 8;
    bits = key_bitmap(&base);
    before = PyMem_Malloc(blocks * sizeof *before);
    if (!bits || !before) {
        PyErr_NoMemory();
        goto done;
    }
    uint32_t total;
    Py_BEGIN_ALLOW_THREADS
    total = mark_and_rank(pix.buf, n, bits, before, out.buf);
    Py_END_ALLOW_THREADS
    colours = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total * 3);
    counts = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total * 8);
    if (!colours || !counts)
        goto done;
    uint8_t *c = (uint8_t *)PyBytes_AS_STRING(colours);
    int64_t *k = (int64_t *)PyBytes_AS_STRING(counts);
    Py_BEGIN_ALLOW_THREADS
    uint32_t at = 0;
    for (size_t w = 0; w < words; w++)
        for (uint64_t m = bits[w]; m; m &= m - 1) {
            uint32_t key = (uint32_t)(w << 6) | (uint32_t)__builtin_ctzll(m);
            c[3 * at] = (uint8_t)(key >> 16);
            c[3 * at + 1] = (uint8_t)(key >> 8);
            c[3 * at + 2] = (uint8_t)key;
            at++;
        }
    memset(k, 0, (size_t)total * 8);
    const int32_t *ids = out.buf;
    for (Py_ssize_t i = 0; i < n; i++)
        k[ids[i]]++;
    Py_END_ALLOW_THREADS
    result = PyTuple_Pack(2, colours, counts);
done:
    Py_XDECREF(colours);
    Py_XDECREF(counts);
    free(base);
    PyMem_Free(before);
    PyBuffer_Release(&pix);
    PyBuffer_Release(&out);
    return result;
}

/* ------------------------------------------------------------------------
 * Ward's merging (quantize._ward_merge): the same rounds -- reciprocal
 * nearest pairs under Ward's cost, the cheaper half of them merged per
 * round, only the clusters whose neighbour was merged looked at again --
 * with the costs in float64 (numpy's come from float32 matrix products, so a
 * near tie may go the other way; the error is the same to rounding). */

typedef double vd __attribute__((vector_size(32)));
typedef int64_t vl __attribute__((vector_size(32)));
#define DLANES 4

/* The clusters laid out for the neighbour search: per block of 4 clusters,
 * dim rows of coordinates, then their 1 / weight (padding: far away). */
static void ward_blocks(vd *blocks, const double *c, const double *wt, Py_ssize_t count, int dim)
{
    Py_ssize_t nblocks = (count + DLANES - 1) / DLANES;
    for (Py_ssize_t i = 0; i < nblocks * DLANES; i++) {
        vd *b = blocks + (i / DLANES) * (dim + 1);
        for (int q = 0; q < dim; q++)
            b[q][i % DLANES] = i < count ? c[i * dim + q] : 1e150;
        b[dim][i % DLANES] = i < count ? 1.0 / wt[i] : 0.0;
    }
}

/* the nearest other cluster of i under cost |c_i - c_j|^2 / (1/w_i + 1/w_j),
 * ties to the lowest j */
SEARCH_CLONES
static void ward_neighbour(const vd *blocks, const double *c, const double *wt, Py_ssize_t count, int dim,
                           Py_ssize_t i, Py_ssize_t *nbr, double *cost)
{
    Py_ssize_t nblocks = (count + DLANES - 1) / DLANES;
    vd x[MAX_DIM], best = (vd){0} + INFINITY;
    for (int q = 0; q < dim; q++)
        x[q] = (vd){0} + c[i * dim + q];
    vd inv = (vd){0} + 1.0 / wt[i];
    vl here = {0, 1, 2, 3}, which = here - here, step = (vl){0} + DLANES, self = (vl){0} + i;
    for (Py_ssize_t b = 0; b < nblocks; b++) {
        const vd *blk = blocks + b * (dim + 1);
        vd t = x[0] - blk[0], d = t * t;
        for (int q = 1; q < dim; q++) {
            t = x[q] - blk[q];
            d += t * t;
        }
        d /= inv + blk[dim];
        vl nearer = (d < best) & (here != self);
        which = (here & nearer) | (which & ~nearer);
        best = (vd)(((vl)d & nearer) | ((vl)best & ~nearer));
        here += step;
    }
    int lane = 0;
    for (int l = 1; l < DLANES; l++)
        if (best[l] < best[lane] || (best[l] == best[lane] && which[l] < which[lane]))
            lane = l;
    nbr[i] = best[lane] < INFINITY ? (Py_ssize_t)which[lane] : (i == 0 ? (count > 1) : 0);
    cost[i] = best[lane];
}

/* ward(means, weight, dim, k) -> bytes of the merged centroids (k * dim float64) */
static PyObject *ward(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer mb, wb;
    int dim;
    Py_ssize_t k;
    if (!PyArg_ParseTuple(args, "y*y*in", &mb, &wb, &dim, &k))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t row = (Py_ssize_t)sizeof(double) * dim, count = dim >= 1 ? mb.len / row : 0;
    double *c = NULL, *wt = NULL, *cost = NULL;
    Py_ssize_t *nbr = NULL, *newpos = NULL;
    uint8_t *todo = NULL, *touched = NULL, *gone = NULL;
    Keyed *pairs = NULL; /* mutual pairs by increasing cost */
    vd *blocks = NULL;
    void *blocks_mem = NULL; /* blocks: 32-byte aligned within it */
    if (dim < 1 || dim > MAX_DIM || mb.len % row || wb.len != count * (Py_ssize_t)sizeof(double)
        || k < 1 || count < 1) {
        PyErr_SetString(PyExc_ValueError, "ward: buffer sizes do not match");
        goto done;
    }
    c = PyMem_Malloc((size_t)mb.len);
    wt = PyMem_Malloc((size_t)wb.len);
    cost = PyMem_Malloc((size_t)count * sizeof(double));
    nbr = PyMem_Malloc((size_t)count * sizeof(Py_ssize_t));
    newpos = PyMem_Malloc((size_t)count * sizeof(Py_ssize_t));
    todo = PyMem_Malloc((size_t)count);
    touched = PyMem_Malloc((size_t)count);
    gone = PyMem_Malloc((size_t)count);
    pairs = PyMem_Malloc((size_t)count * sizeof(Keyed));
    blocks_mem = PyMem_Malloc((size_t)((count + DLANES - 1) / DLANES * (dim + 1)) * sizeof(vd) + 32);
    blocks = aligned32(blocks_mem);
    if (!c || !wt || !cost || !nbr || !newpos || !todo || !touched || !gone || !pairs || !blocks) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(c, mb.buf, (size_t)mb.len);
    memcpy(wt, wb.buf, (size_t)wb.len);
    Py_BEGIN_ALLOW_THREADS
    memset(todo, 1, (size_t)count);
    while (count > k) {
        ward_blocks(blocks, c, wt, count, dim);
        for (Py_ssize_t i = 0; i < count; i++)
            if (todo[i])
                ward_neighbour(blocks, c, wt, count, dim, i, nbr, cost);
        Py_ssize_t mutual = 0;
        for (Py_ssize_t i = 0; i < count; i++)
            if (nbr[nbr[i]] == i && i < nbr[i]) {
                pairs[mutual].key = cost[i];
                pairs[mutual++].i = i;
            }
        if (!mutual) { /* possible only through rounding: merge the cheapest pair */
            Py_ssize_t a = 0;
            for (Py_ssize_t i = 1; i < count; i++)
                if (cost[i] < cost[a])
                    a = i;
            pairs[mutual].key = cost[a];
            pairs[mutual++].i = a;
        }
        qsort(pairs, (size_t)mutual, sizeof *pairs, by_key_up);
        Py_ssize_t take = (mutual + 1) / 2;
        if (take > count - k)
            take = count - k;
        if (take < 1)
            take = 1;
        memset(touched, 0, (size_t)count);
        memset(gone, 0, (size_t)count);
        for (Py_ssize_t t = 0; t < take; t++) {
            Py_ssize_t a = pairs[t].i, b = nbr[a];
            double total = wt[a] + wt[b];
            for (int q = 0; q < dim; q++)
                c[a * dim + q] = (c[a * dim + q] * wt[a] + c[b * dim + q] * wt[b]) / total;
            wt[a] = total;
            touched[a] = touched[b] = 1;
            gone[b] = 1;
        }
        Py_ssize_t kept = 0;
        for (Py_ssize_t i = 0; i < count; i++) {
            newpos[i] = gone[i] ? kept - 1 : kept;
            if (!gone[i])
                kept++;
        }
        Py_ssize_t at = 0;
        for (Py_ssize_t i = 0; i < count; i++) {
            if (gone[i])
                continue;
            memmove(c + at * dim, c + i * dim, (size_t)dim * sizeof(double));
            wt[at] = wt[i];
            cost[at] = cost[i];
            todo[at] = touched[i] || touched[nbr[i]];
            nbr[at] = newpos[nbr[i]] < 0 ? 0 : newpos[nbr[i]];
            at++;
        }
        count = kept;
    }
    Py_END_ALLOW_THREADS
    result = PyBytes_FromStringAndSize((const char *)c, count * row);
done:
    PyMem_Free(c);
    PyMem_Free(wt);
    PyMem_Free(cost);
    PyMem_Free(nbr);
    PyMem_Free(newpos);
    PyMem_Free(todo);
    PyMem_Free(touched);
    PyMem_Free(gone);
    PyMem_Free(pairs);
    PyMem_Free(blocks_mem);
    PyBuffer_Release(&mb);
    PyBuffer_Release(&wb);
    return result;
}

/* ------------------------------------------------------------------------
 * Error diffusion (quantize/dither.py, whose _diffuse_python is the
 * reference): serpentine Floyd-Steinberg over the error space, with each
 * pixel's share of the diffused error from the weights map.  The same
 * float64 operations in the same order as the Python loop (no contraction
 * into fused multiply-adds), so the two give the same indices.  A target's
 * nearest entry: the entries sorted by the sum of their components, searched
 * outward from the target's sum; by Cauchy-Schwarz an entry whose sum differs
 * by s is at least s^2 / C away, so the search stops on each side once that
 * exceeds the best distance found (starting from the pixel's undithered
 * entry).  Exact, ties to the lowest index, as a full scan. */

#if defined(__clang__)
#define NO_CONTRACT
#define NO_CONTRACT_BODY _Pragma("clang fp contract(off)")
#elif defined(__GNUC__)
#define NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#define NO_CONTRACT_BODY
#else
#define NO_CONTRACT
#define NO_CONTRACT_BODY
#endif

typedef struct {
    Py_ssize_t n;
    int dim;
    const double *pre; /* n * dim, the entries in the error space */
    const double *key; /* n sums of components, ascending */
    const Py_ssize_t *order; /* entry of each sorted position */
} Sorted;

NO_CONTRACT
static double entry_distance(const Sorted *S, Py_ssize_t j, const double *t)
{
    NO_CONTRACT_BODY
    const double *e = S->pre + j * S->dim;
    double u = e[0] - t[0], d = u * u;
    for (int c = 1; c < S->dim; c++) {
        u = e[c] - t[c];
        d += u * u;
    }
    return d;
}

/* the nearest entry of target t, starting from entry guess */
NO_CONTRACT
static Py_ssize_t sorted_nearest(const Sorted *S, const double *t, Py_ssize_t guess)
{
    NO_CONTRACT_BODY
    double kt = 0, best = entry_distance(S, guess, t);
    Py_ssize_t which = guess, lo = 0, hi = S->n;
    for (int c = 0; c < S->dim; c++)
        kt += t[c];
    while (lo < hi) { /* the first position whose key is >= kt */
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (S->key[mid] < kt)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (int side = 0; side < 2; side++) {
        for (Py_ssize_t at = side ? lo - 1 : lo; at >= 0 && at < S->n; at += side ? -1 : 1) {
            double s = S->key[at] - kt;
            if (s * s / S->dim > best * (1 + 1e-9) + 1e-9)
                break;
            Py_ssize_t j = S->order[at];
            double d = entry_distance(S, j, t);
            if (d < best || (d == best && j < which)) {
                best = d;
                which = j;
            }
        }
    }
    return which;
}

typedef struct {
    double max_error, third, lam, quiet, overshoot, down_in, down_out;
} Clamps;

NO_CONTRACT
static void diffuse_loop(const uint8_t *image, Py_ssize_t h, Py_ssize_t w, int dim, int alpha, void *out,
                         int wide, const float *share, const Sorted *S, const Clamps *K, double *rows)
{
    NO_CONTRACT_BODY
    double *this_row = rows, *next_row = rows + (w + 2) * dim;
    const double lo = -K->overshoot, hi = 255.0 + K->overshoot;
    double p[MAX_DIM], s[MAX_DIM], target[MAX_DIM], err[MAX_DIM];
    memset(this_row, 0, (size_t)(2 * (w + 2) * dim) * sizeof(double));
    for (Py_ssize_t y = 0; y < h; y++) {
        memset(next_row, 0, (size_t)((w + 2) * dim) * sizeof(double));
        const int forward = y % 2 == 0;
        const Py_ssize_t step = forward ? 1 : -1;
        for (Py_ssize_t i = 0; i < w; i++) {
            Py_ssize_t x = forward ? i : w - 1 - i, at = y * w + x;
            const uint8_t *px = image + at * dim;
            if (alpha && px[dim - 1] == 0)
                continue; /* transparent: its nearest entry, no error in or out */
            if (alpha) {
                for (int c = 0; c < dim - 1; c++)
                    p[c] = (double)((int)px[c] * (int)px[dim - 1]) / 255.0;
                p[dim - 1] = (double)px[dim - 1];
            } else {
                for (int c = 0; c < dim; c++)
                    p[c] = (double)px[c];
            }
            const double level = (double)share[at];
            double spread = 0.0;
            for (int c = 0; c < dim; c++) {
                s[c] = this_row[(x + 1) * dim + c] * level;
                spread += s[c] * s[c];
            }
            Py_ssize_t index = wide ? (Py_ssize_t)((uint16_t *)out)[at] : (Py_ssize_t)((uint8_t *)out)[at];
            if (spread < K->quiet) {
                for (int c = 0; c < dim; c++)
                    target[c] = p[c];
            } else {
                double ratio = 1.0;
                for (int c = 0; c < dim; c++) {
                    double t = p[c] + s[c];
                    if (t > hi) {
                        double r = (hi - p[c]) / s[c];
                        if (r < ratio)
                            ratio = r;
                    } else if (t < lo) {
                        double r = (lo - p[c]) / s[c];
                        if (r < ratio)
                            ratio = r;
                    }
                }
                if (spread > K->max_error)
                    ratio *= K->down_in;
                for (int c = 0; c < dim; c++)
                    target[c] = p[c] + s[c] * ratio;
                index = sorted_nearest(S, target, index);
            }
            if (K->lam > 0) { /* the rate-aware choice: the previous or the upper pixel's entry */
                const double t = 1.0 - level; /* less in smooth areas, where runs would draw worms */
                const double limit = entry_distance(S, index, target) * (1.0 + K->third * t) + K->lam * t;
                Py_ssize_t previous = x - step, candidates[2];
                int count = 0;
                if (previous >= 0 && previous < w)
                    candidates[count++] = wide ? ((uint16_t *)out)[at - step] : ((uint8_t *)out)[at - step];
                if (y)
                    candidates[count++] = wide ? ((uint16_t *)out)[at - w] : ((uint8_t *)out)[at - w];
                for (int c = 0; c < count; c++)
                    if (candidates[c] != index && entry_distance(S, candidates[c], target) <= limit) {
                        index = candidates[c];
                        break;
                    }
            }
            if (wide)
                ((uint16_t *)out)[at] = (uint16_t)index;
            else
                ((uint8_t *)out)[at] = (uint8_t)index;
            const double *e = S->pre + index * dim;
            double size = 0.0;
            for (int c = 0; c < dim; c++) {
                err[c] = target[c] - e[c];
                size += err[c] * err[c];
            }
            if (size > K->max_error)
                for (int c = 0; c < dim; c++)
                    err[c] *= K->down_out;
            double *ahead = this_row + (x + 1 + step) * dim, *here = next_row + (x + 1) * dim;
            double *behind = next_row + (x + 1 - step) * dim, *after = next_row + (x + 1 + step) * dim;
            for (int c = 0; c < dim; c++) {
                double v = err[c];
                ahead[c] += v * (7.0 / 16.0);
                behind[c] += v * (3.0 / 16.0);
                here[c] += v * (5.0 / 16.0);
                after[c] += v * (1.0 / 16.0);
            }
        }
        double *swap = this_row;
        this_row = next_row;
        next_row = swap;
    }
}

/* diffuse(image, pre, out, share, width, channels, alpha, wide, max_error,
 *         third, lam, quiet, overshoot, down_in, down_out) -> None
 *
 * image: h * width * channels uint8; pre: n * channels float64 (the entries
 * in the error space); out: h * width indices (uint8, or uint16 when wide),
 * the nearest map on entry, the dithered map on return; share: h * width
 * float32.  The constants are quantize/dither.py's. */
static PyObject *diffuse(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer img, pre, out, share;
    Py_ssize_t w;
    int dim, alpha, wide;
    Clamps K;
    if (!PyArg_ParseTuple(args, "y*y*w*y*nippddddddd", &img, &pre, &out, &share, &w, &dim, &alpha, &wide,
                          &K.max_error, &K.third, &K.lam, &K.quiet, &K.overshoot, &K.down_in, &K.down_out))
        return NULL;
    PyObject *result = NULL;
    Keyed *keyed = NULL;
    double *key = NULL, *rows = NULL;
    Py_ssize_t *order = NULL;
    Py_ssize_t row = (Py_ssize_t)dim * (Py_ssize_t)sizeof(double), h = 0, n = 0, width = wide ? 2 : 1;
    if (dim >= 1 && dim <= MAX_DIM && w >= 1) {
        h = img.len / (w * dim);
        n = pre.len / row;
    }
    if (dim < 1 || dim > MAX_DIM || w < 1 || img.len != h * w * dim || pre.len != n * row || n < 1
        || out.len != h * w * width || share.len != h * w * (Py_ssize_t)sizeof(float)) {
        PyErr_SetString(PyExc_ValueError, "diffuse: buffer sizes do not match");
        goto done;
    }
    for (Py_ssize_t i = 0; i < h * w; i++) {
        Py_ssize_t v = wide ? (Py_ssize_t)((uint16_t *)out.buf)[i] : (Py_ssize_t)((uint8_t *)out.buf)[i];
        if (v >= n) {
            PyErr_SetString(PyExc_ValueError, "diffuse: an index is not below the number of entries");
            goto done;
        }
    }
    keyed = PyMem_Malloc((size_t)n * sizeof(Keyed));
    key = PyMem_Malloc((size_t)n * sizeof(double));
    order = PyMem_Malloc((size_t)n * sizeof(Py_ssize_t));
    rows = PyMem_Malloc((size_t)(2 * (w + 2) * dim) * sizeof(double));
    if (!keyed || !key || !order || !rows) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    const double *e = pre.buf;
    for (Py_ssize_t j = 0; j < n; j++) {
        double sum = 0;
        for (int c = 0; c < dim; c++)
            sum += e[j * dim + c];
        keyed[j].key = sum;
        keyed[j].i = j;
    }
    qsort(keyed, (size_t)n, sizeof *keyed, by_key_up);
    for (Py_ssize_t j = 0; j < n; j++) {
        key[j] = keyed[j].key;
        order[j] = keyed[j].i;
    }
    Sorted S = {n, dim, e, key, order};
    diffuse_loop(img.buf, h, w, dim, alpha, out.buf, wide, share.buf, &S, &K, rows);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_Free(keyed);
    PyMem_Free(key);
    PyMem_Free(order);
    PyMem_Free(rows);
    PyBuffer_Release(&img);
    PyBuffer_Release(&pre);
    PyBuffer_Release(&out);
    PyBuffer_Release(&share);
    return result;
}

static PyMethodDef methods[] = {
    {"nearest", nearest, METH_VARARGS, "Nearest centre of each point (see quantize.py)."},
    {"distinct3", distinct3, METH_VARARGS, "Distinct RGB colours, counts and ids (see quantize.py)."},
    {"ward", ward, METH_VARARGS, "Ward's merging of weighted clusters (see quantize.py)."},
    {"split", split, METH_VARARGS, "Variance-minimising box splits (see quantize.py)."},
    {"lloyd", lloyd, METH_VARARGS, "Weighted Lloyd iterations with Hamerly's bounds (see quantize.py)."},
    {"diffuse", diffuse, METH_VARARGS, "Floyd-Steinberg error diffusion (see quantize/dither.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "vqcodec._quantize",
    "The nearest-codeword search of the quantizer; see vqcodec/quantize.py.", -1, methods,
};

PyMODINIT_FUNC PyInit__quantize(void)
{
    return PyModule_Create(&module);
}
