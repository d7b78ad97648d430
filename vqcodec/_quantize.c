/* vqcodec._quantize: the nearest-codeword search of vqcodec/quantize.py.
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
#include <stdint.h>
#include <string.h>

#define LANES 8
#define MAX_DIM 4

#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && !defined(__clang__)
#define SEARCH_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SEARCH_CLONES
#endif

typedef float vf __attribute__((vector_size(4 * LANES)));
typedef int32_t vi __attribute__((vector_size(4 * LANES)));

/* centres: blocks of LANES, each block dim rows of LANES floats (padding: far away) */
static inline __attribute__((always_inline)) void search(const float *points, Py_ssize_t n, const int dim,
                                                         const vf *blocks, Py_ssize_t nblocks,
                                                         int64_t *labels)
{
    vi step, first;
    for (int l = 0; l < LANES; l++) {
        step[l] = LANES;
        first[l] = l;
    }
    for (Py_ssize_t p = 0; p < n; p++) {
        vf x[MAX_DIM];
        for (int j = 0; j < dim; j++)
            x[j] = (vf){0} + points[p * dim + j];
        vf best = (vf){0} + __builtin_inff();
        vi which = first - first, here = first;
        for (Py_ssize_t b = 0; b < nblocks; b++) {
            const vf *c = blocks + b * dim;
            vf t = x[0] - c[0], d = t * t;
            for (int j = 1; j < dim; j++) {
                t = x[j] - c[j];
                d += t * t;
            }
            vi nearer = d < best; /* strictly: the first (lowest) index wins */
            which = (here & nearer) | (which & ~nearer);
            best = (vf)(((vi)d & nearer) | ((vi)best & ~nearer));
            here += step;
        }
        float m = best[0];
        int32_t w = which[0];
        for (int l = 1; l < LANES; l++)
            if (best[l] < m || (best[l] == m && which[l] < w)) {
                m = best[l];
                w = which[l];
            }
        labels[p] = w;
    }
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
 * points: n * dim float32; centres: k * dim float32 (k >= 1); labels: a
 * writable buffer of n int64, each set to its point's nearest centre. */
static PyObject *nearest(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer pts, cen, out;
    int dim;
    if (!PyArg_ParseTuple(args, "y*y*iw*", &pts, &cen, &dim, &out))
        return NULL;
    PyObject *result = NULL;
    vf *blocks = NULL;
    Py_ssize_t row = (Py_ssize_t)sizeof(float) * dim;
    if (dim < 1 || dim > MAX_DIM || pts.len % row || cen.len % row || cen.len == 0
        || out.len != pts.len / row * (Py_ssize_t)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "nearest: buffer sizes do not match");
        goto done;
    }
    Py_ssize_t n = pts.len / row, k = cen.len / row, nblocks = (k + LANES - 1) / LANES;
    blocks = PyMem_Malloc((size_t)(nblocks * dim) * sizeof(vf) + 32);
    if (!blocks) {
        PyErr_NoMemory();
        goto done;
    }
    const float *c = cen.buf;
    for (Py_ssize_t i = 0; i < nblocks * LANES; i++) /* padding: a centre no point is nearer to */
        for (int j = 0; j < dim; j++)
            blocks[(i / LANES) * dim + j][i % LANES] = i < k ? c[i * dim + j] : 3.0e18f;
    Py_BEGIN_ALLOW_THREADS
    search_any(pts.buf, n, dim, blocks, nblocks, out.buf);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_Free(blocks);
    PyBuffer_Release(&pts);
    PyBuffer_Release(&cen);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"nearest", nearest, METH_VARARGS, "Nearest centre of each point (see quantize.py)."},
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
