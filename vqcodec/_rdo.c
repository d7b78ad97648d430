/* vqcodec._rdo: the loops of rdo.smooth for one band of rows (vqcodec/rdo.py).
 *
 * rdo.py holds the rule and a complete numpy implementation; this file runs
 * the same rule pixel by pixel, several times faster, and gives the same
 * indices (the tests check the two against each other).
 *
 * The numpy version updates every pixel of a pass at once from its
 * neighbours' indices as they were *before* the pass.  Here a left pass walks
 * each row from right to left and an up pass walks the rows from the bottom
 * up, so the neighbour a pixel looks at has not been updated yet in that
 * pass: the same result, in place.
 *
 * Costs are squared errors summed over the channels, in integers, over
 * premultiplied colours when there is alpha (rounded as rdo._planes does).
 * The functions release the GIL while they loop.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* n pixels of C channels, premultiplied and rounded as rdo._planes:
 * colour = (colour * alpha + 127) // 255, alpha kept. */
static void premultiply(const uint8_t *in, uint8_t *out, Py_ssize_t n, int channels, int alpha)
{
    if (!alpha) {
        memcpy(out, in, (size_t)(n * channels));
        return;
    }
    for (Py_ssize_t p = 0; p < n; p++) {
        const uint8_t *s = in + p * channels;
        uint8_t *d = out + p * channels;
        unsigned a = s[channels - 1];
        for (int c = 0; c < channels - 1; c++)
            d[c] = (uint8_t)((s[c] * a + 127) / 255);
        d[channels - 1] = (uint8_t)a;
    }
}

ALWAYS_INLINE int32_t cost(const uint8_t *pixel, const uint8_t *entry, const int channels)
{
    int32_t total = 0;
    for (int c = 0; c < channels; c++) {
        int32_t d = (int32_t)pixel[c] - (int32_t)entry[c];
        total += d * d;
    }
    return total;
}

ALWAYS_INLINE unsigned get(const void *a, Py_ssize_t i, const int wide)
{
    return wide ? ((const uint16_t *)a)[i] : ((const uint8_t *)a)[i];
}

ALWAYS_INLINE void put(void *a, Py_ssize_t i, unsigned v, const int wide)
{
    if (wide)
        ((uint16_t *)a)[i] = (uint16_t)v;
    else
        ((uint8_t *)a)[i] = (uint8_t)v;
}

/* 1 if every one of the count indices is below n */
static int below(const void *idx, Py_ssize_t count, unsigned n, int wide)
{
    unsigned high = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        unsigned v = get(idx, i, wide);
        high = v > high ? v : high;
    }
    return count == 0 || high < n;
}

/* Take the neighbour's index where it costs at most the limit; 1 if it changed.
 * A neighbour with the pixel's own index changes nothing and is not costed
 * (after the first passes most are). */
ALWAYS_INLINE int consider(void *cur, Py_ssize_t p, unsigned nb, const uint8_t *px,
                           const uint8_t *book, const int32_t *limit, const int channels,
                           const int wide)
{
    unsigned now = get(cur, p, wide);
    if (nb == now)
        return 0;
    /* branch-free: whether a neighbour is taken is a coin toss to the predictor */
    int take = cost(px + p * channels, book + nb * channels, channels) <= limit[p];
    put(cur, p, take ? nb : now, wide);
    return take;
}

ALWAYS_INLINE void smooth_loops(void *cur, const void *above, const uint8_t *px, const uint8_t *book,
                                int32_t *limit, Py_ssize_t width, Py_ssize_t rows, double factor,
                                double lam, int iterations, const int channels, const int wide)
{
    Py_ssize_t count = width * rows;
    for (Py_ssize_t p = 0; p < count; p++)
        limit[p] = (int32_t)floor((double)cost(px + p * channels, book + get(cur, p, wide) * channels,
                                               channels) * factor + lam);
    for (int it = 0; it < iterations; it++) {
        Py_ssize_t changed = 0;
        for (Py_ssize_t y = 0; y < rows; y++) /* left neighbours, each row right to left */
            for (Py_ssize_t x = width - 1; x > 0; x--) {
                Py_ssize_t p = y * width + x;
                changed += consider(cur, p, get(cur, p - 1, wide), px, book, limit, channels, wide);
            }
        for (Py_ssize_t y = rows - 1; y > 0; y--) /* upper neighbours, bottom row first */
            for (Py_ssize_t x = 0; x < width; x++) {
                Py_ssize_t p = y * width + x;
                changed += consider(cur, p, get(cur, p - width, wide), px, book, limit, channels, wide);
            }
        if (above) /* the band's first row looks at the input row above the band */
            for (Py_ssize_t x = 0; x < width; x++)
                changed += consider(cur, x, get(above, x, wide), px, book, limit, channels, wide);
        if (!changed) /* a pass that changes nothing: so would every later one */
            break;
    }
}

#define DISPATCH(CALL_WITH)                                                   \
    switch (channels * 2 + wide) {                                            \
    case 2: CALL_WITH(1, 0); break;                                           \
    case 3: CALL_WITH(1, 1); break;                                           \
    case 4: CALL_WITH(2, 0); break;                                           \
    case 5: CALL_WITH(2, 1); break;                                           \
    case 6: CALL_WITH(3, 0); break;                                           \
    case 7: CALL_WITH(3, 1); break;                                           \
    case 8: CALL_WITH(4, 0); break;                                           \
    default: CALL_WITH(4, 1); break;                                          \
    }

/* The buffers both functions take, checked; 0 and an exception if wrong.
 * With alpha, px and book are premultiplied copies (owned, to be freed, made
 * by premultiply_all without the GIL); without, the inputs themselves. */
typedef struct {
    Py_ssize_t count, n;
    const uint8_t *px, *book;
    uint8_t *own_px, *own_book;
} Prepared;

static int prepare(Prepared *out, const Py_buffer *pix, const Py_buffer *idx, const Py_buffer *book,
                   int channels, int alpha, int wide)
{
    out->px = out->book = out->own_px = out->own_book = NULL;
    Py_ssize_t item = wide ? 2 : 1;
    if (channels < 1 || channels > 4 || idx->len % item || book->len % channels
        || pix->len != idx->len / item * channels || book->len == 0
        || book->len / channels > (wide ? 65536 : 256)) {
        PyErr_SetString(PyExc_ValueError, "rdo: buffer sizes do not match");
        return 0;
    }
    out->count = idx->len / item;
    out->n = book->len / channels;
    if (!alpha) {
        out->px = pix->buf;
        out->book = book->buf;
        return 1;
    }
    out->px = out->own_px = PyMem_Malloc((size_t)pix->len + 1);
    out->book = out->own_book = PyMem_Malloc((size_t)book->len);
    if (!out->own_px || !out->own_book) {
        PyMem_Free(out->own_px);
        PyMem_Free(out->own_book);
        PyErr_NoMemory();
        return 0;
    }
    return 1;
}

static void premultiply_all(Prepared *prep, const Py_buffer *pix, const Py_buffer *book, int channels)
{
    if (prep->own_px) {
        premultiply(pix->buf, prep->own_px, prep->count, channels, 1);
        premultiply(book->buf, prep->own_book, prep->n, channels, 1);
    }
}

/* total_cost(pixels, indices, codebook, channels, alpha, wide) -> int
 *
 * The summed cost of every pixel against its entry. */
static PyObject *total_cost(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer pix, idx, book;
    int channels, alpha, wide;
    if (!PyArg_ParseTuple(args, "y*y*y*ipp", &pix, &idx, &book, &channels, &alpha, &wide))
        return NULL;
    PyObject *result = NULL;
    Prepared prep;
    if (prepare(&prep, &pix, &idx, &book, channels, alpha, wide)) {
        long long total = 0;
        int ok;
        Py_BEGIN_ALLOW_THREADS
        ok = below(idx.buf, prep.count, (unsigned)prep.n, wide);
        if (ok) {
            premultiply_all(&prep, &pix, &book, channels);
#define TOTAL(C, W)                                                                          \
    for (Py_ssize_t p = 0; p < prep.count; p++)                                               \
        total += cost(prep.px + p * (C), prep.book + get(idx.buf, p, W) * (C), C)
            DISPATCH(TOTAL)
#undef TOTAL
        }
        Py_END_ALLOW_THREADS
        if (ok)
            result = PyLong_FromLongLong(total);
        else
            PyErr_SetString(PyExc_ValueError, "rdo: an index is not below the codebook size");
    }
    PyMem_Free(prep.own_px);
    PyMem_Free(prep.own_book);
    PyBuffer_Release(&pix);
    PyBuffer_Release(&idx);
    PyBuffer_Release(&book);
    return result;
}

/* smooth_band(pixels, indices, above, codebook, width, channels, alpha, wide,
 *             strength, lam, iterations) -> None
 *
 * Updates the writable indices of one band (rows of width pixels) in place.
 * above: the input indices of the row above the band, or empty for the
 * image's first band. */
static PyObject *smooth_band(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer pix, idx, above, book;
    Py_ssize_t width;
    int channels, alpha, wide, iterations;
    double strength, lam;
    if (!PyArg_ParseTuple(args, "y*w*y*y*nippddi", &pix, &idx, &above, &book, &width, &channels,
                          &alpha, &wide, &strength, &lam, &iterations))
        return NULL;
    Prepared prep = {0, 0, NULL, NULL, NULL, NULL};
    int32_t *limit = NULL;
    Py_ssize_t item = wide ? 2 : 1;
    if (width < 1 || idx.len % (width * item) || (above.len && above.len != width * item)
        || iterations < 0) {
        PyErr_SetString(PyExc_ValueError, "rdo: buffer sizes do not match");
        goto done;
    }
    if (!prepare(&prep, &pix, &idx, &book, channels, alpha, wide))
        goto done;
    limit = PyMem_Malloc((size_t)prep.count * sizeof *limit + 1);
    if (!limit) {
        PyErr_NoMemory();
        goto done;
    }
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = below(idx.buf, prep.count, (unsigned)prep.n, wide)
         && below(above.buf, above.len / item, (unsigned)prep.n, wide);
    if (ok) {
        premultiply_all(&prep, &pix, &book, channels);
        Py_ssize_t rows = prep.count / width;
        const void *up = above.len ? above.buf : NULL;
        double factor = 1.0 + strength / 3.0;
#define SMOOTH(C, W) \
    smooth_loops(idx.buf, up, prep.px, prep.book, limit, width, rows, factor, lam, iterations, C, W)
        DISPATCH(SMOOTH)
#undef SMOOTH
    }
    Py_END_ALLOW_THREADS
    if (!ok)
        PyErr_SetString(PyExc_ValueError, "rdo: an index is not below the codebook size");
done:
    PyMem_Free(limit);
    PyMem_Free(prep.own_px);
    PyMem_Free(prep.own_book);
    PyBuffer_Release(&pix);
    PyBuffer_Release(&idx);
    PyBuffer_Release(&above);
    PyBuffer_Release(&book);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"total_cost", total_cost, METH_VARARGS, "Summed cost of pixels against their entries (see rdo.py)."},
    {"smooth_band", smooth_band, METH_VARARGS, "rdo.smooth on one band of rows, in place (see rdo.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "vqcodec._rdo",
    "The loops of the rate-aware index choice; see vqcodec/rdo.py.", -1, methods,
};

PyMODINIT_FUNC PyInit__rdo(void)
{
    return PyModule_Create(&module);
}
