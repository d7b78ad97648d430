/* vqcodec._ssim: the filtering loops of metrics.ssim (vqcodec/metrics.py).
 *
 * metrics.py defines SSIM (window, constants, alpha handling, small images)
 * and holds a complete numpy implementation; this file computes the same sum
 * of the SSIM map over a range of output rows of one channel, several times
 * faster, equal up to floating-point rounding (the tests check the two
 * against each other).
 *
 * Each input row is filtered horizontally into four rows -- x, y,
 * x^2 + y^2 and x*y -- kept in a ring of as many rows as the vertical window
 * has taps; each output row is the vertical filter of the ring, then the SSIM
 * formula, summed.  Memory: 4 * taps * output columns doubles.  Values are
 * loaded as metrics._load_channel does (premultiplied colour: the float32
 * colour * alpha / 255).  The function releases the GIL while it loops.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_TAPS 11

#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && !defined(__clang__)
/* AVX2 and FMA (x86-64-v3) where the machine has them, chosen when the module loads */
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define VECTOR_CLONES
#endif

#define RADIUS 5

/* out[j] = sum over t < ntaps of taps[t] * v[j + t], j < cols; with a constant
 * ntaps the sum is unrolled and the loop over j vectorised. */
static inline __attribute__((always_inline)) void window(const double *restrict v, const double *taps,
                                                         const int ntaps, Py_ssize_t cols,
                                                         double *restrict out)
{
    double w[MAX_TAPS];
    for (int t = 0; t < ntaps; t++)
        w[t] = taps[t];
    for (Py_ssize_t j = 0; j < cols; j++) {
        double a = 0;
        for (int t = 0; t < ntaps; t++)
            a += w[t] * v[j + t];
        out[j] = a;
    }
}

/* Filter one input row: h (4 rows of cols doubles) = the window along the row
 * of x, y, x^2 + y^2 and x*y.  xs: scratch of 4 * width doubles. */
VECTOR_CLONES
static void filter_row(const uint8_t *ref, const uint8_t *tst, Py_ssize_t width, int channels,
                       int channel, int premultiplied, const double *taps, int ntaps, Py_ssize_t cols,
                       double *xs, double *h)
{
    double *ys = xs + width, *ss = ys + width, *ps = ss + width;
    if (premultiplied) {
        for (Py_ssize_t i = 0; i < width; i++) {
            const uint8_t *r = ref + i * channels, *t = tst + i * channels;
            xs[i] = (double)((float)(r[channel] * r[channels - 1]) / 255.0f);
            ys[i] = (double)((float)(t[channel] * t[channels - 1]) / 255.0f);
        }
    } else {
        for (Py_ssize_t i = 0; i < width; i++) {
            xs[i] = ref[i * channels + channel];
            ys[i] = tst[i * channels + channel];
        }
    }
    for (Py_ssize_t i = 0; i < width; i++) {
        ss[i] = xs[i] * xs[i] + ys[i] * ys[i];
        ps[i] = xs[i] * ys[i];
    }
    const double *in[4] = {xs, ys, ss, ps};
    for (int q = 0; q < 4; q++)
        if (ntaps == 2 * RADIUS + 1) /* the usual window: its taps unrolled, the row vectorised */
            window(in[q], taps, 2 * RADIUS + 1, cols, h + q * cols);
        else
            window(in[q], taps, ntaps, cols, h + q * cols);
}

/* acc[j] = sum over t < ntaps of taps[t] * rows[t][j], j < count */
static inline __attribute__((always_inline)) void vertical(double *const *rows, const double *taps,
                                                           const int ntaps, Py_ssize_t count,
                                                           double *restrict acc)
{
    double w[MAX_TAPS];
    const double *r[MAX_TAPS];
    for (int t = 0; t < ntaps; t++) {
        w[t] = taps[t];
        r[t] = rows[t];
    }
    for (Py_ssize_t j = 0; j < count; j++) {
        double a = 0;
        for (int t = 0; t < ntaps; t++)
            a += w[t] * r[t][j];
        acc[j] = a;
    }
}

/* One output row: the vertical window over the ring, then the SSIM map summed. */
VECTOR_CLONES
static double ssim_row(double *const *rows, const double *taps, int ntaps, Py_ssize_t cols,
                       double *acc)
{
    if (ntaps == 2 * RADIUS + 1)
        vertical(rows, taps, 2 * RADIUS + 1, 4 * cols, acc);
    else
        vertical(rows, taps, ntaps, 4 * cols, acc);
    const double c1 = (0.01 * 255.0) * (0.01 * 255.0), c2 = (0.03 * 255.0) * (0.03 * 255.0);
    double *restrict mx = acc, *restrict my = acc + cols, *restrict ms = acc + 2 * cols,
           *restrict mp = acc + 3 * cols;
    for (Py_ssize_t j = 0; j < cols; j++) { /* the map, into mx (vectorised) */
        double xy = mx[j] * my[j], sq = mx[j] * mx[j] + my[j] * my[j];
        double num = (2.0 * xy + c1) * (2.0 * (mp[j] - xy) + c2);
        double den = (sq + c1) * ((ms[j] - sq) + c2);
        mx[j] = num / den;
    }
    double part[4] = {0, 0, 0, 0}; /* its sum, in a fixed order */
    Py_ssize_t j = 0;
    for (; j + 4 <= cols; j += 4)
        for (int q = 0; q < 4; q++)
            part[q] += mx[j + q];
    double sum = (part[0] + part[1]) + (part[2] + part[3]);
    for (; j < cols; j++)
        sum += mx[j];
    return sum;
}

/* ssim_rows(ref, tst, height, width, channels, channel, premultiplied,
 *           taps_v, taps_h, first, last) -> float
 *
 * ref, tst: (height, width, channels) uint8.  taps_v, taps_h: float64 window
 * weights (odd counts, at most 11, at most height / width).  Returns the sum of
 * the SSIM map of one channel over output rows first..last-1 (the map has
 * height - taps_v + 1 rows and width - taps_h + 1 columns). */
static PyObject *ssim_rows(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer ref, tst, tv, th;
    Py_ssize_t height, width, first, last;
    int channels, channel, premultiplied;
    if (!PyArg_ParseTuple(args, "y*y*nniipy*y*nn", &ref, &tst, &height, &width, &channels, &channel,
                          &premultiplied, &tv, &th, &first, &last))
        return NULL;
    PyObject *result = NULL;
    int ntv = (int)(tv.len / sizeof(double)), nth = (int)(th.len / sizeof(double));
    Py_ssize_t rows_out = height - ntv + 1, cols = width - nth + 1;
    if (height < 1 || width < 1 || channels < 1 || channels > 4 || channel < 0 || channel >= channels
        || ref.len != height * width * channels || tst.len != ref.len || tv.len % sizeof(double)
        || th.len % sizeof(double) || ntv < 1 || nth < 1 || ntv > MAX_TAPS || nth > MAX_TAPS
        || rows_out < 1 || cols < 1 || first < 0 || last > rows_out || first > last) {
        PyErr_SetString(PyExc_ValueError, "ssim_rows: sizes do not match");
        goto done;
    }
    double taps_v[MAX_TAPS], taps_h[MAX_TAPS];
    memcpy(taps_v, tv.buf, (size_t)tv.len);
    memcpy(taps_h, th.buf, (size_t)th.len);
    /* ring of ntv filtered rows (4 * cols each), scratch rows, accumulator */
    double *mem = PyMem_Malloc(sizeof(double) * ((size_t)(ntv + 1) * 4 * (size_t)cols + 4 * (size_t)width));
    if (!mem) {
        PyErr_NoMemory();
        goto done;
    }
    double sum = 0;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t row_bytes = width * channels, span = (last - first + ntv - 1) * row_bytes;
    if (last > first && memcmp((const uint8_t *)ref.buf + first * row_bytes,
                               (const uint8_t *)tst.buf + first * row_bytes, (size_t)span) == 0) {
        sum = (double)((last - first) * cols); /* identical windows: SSIM is exactly 1 */
        goto filtered;
    }
    double *ring[MAX_TAPS], *acc = mem + (size_t)ntv * 4 * cols, *xs = acc + 4 * cols;
    const uint8_t *r = ref.buf, *t = tst.buf;
    /* input row i goes to ring slot i % ntv */
    for (Py_ssize_t i = first; i < first + ntv - 1; i++)
        filter_row(r + i * row_bytes, t + i * row_bytes, width, channels, channel, premultiplied,
                   taps_h, nth, cols, xs, mem + (size_t)(i % ntv) * 4 * cols);
    for (Py_ssize_t y = first; y < last; y++) {
        Py_ssize_t i = y + ntv - 1;
        filter_row(r + i * row_bytes, t + i * row_bytes, width, channels, channel, premultiplied,
                   taps_h, nth, cols, xs, mem + (size_t)(i % ntv) * 4 * cols);
        for (int k = 0; k < ntv; k++)
            ring[k] = mem + (size_t)((y + k) % ntv) * 4 * cols;
        sum += ssim_row(ring, taps_v, ntv, cols, acc);
    }
filtered:
    Py_END_ALLOW_THREADS
    PyMem_Free(mem);
    result = PyFloat_FromDouble(sum);
done:
    PyBuffer_Release(&ref);
    PyBuffer_Release(&tst);
    PyBuffer_Release(&tv);
    PyBuffer_Release(&th);
    return result;
}

/* sse(a, b) -> int: the exact sum of squared differences of two equal-sized
 * uint8 buffers (metrics._integer_sse without its int16/int32 temporaries,
 * whose page faults cost more than the sum on a fresh process). */
VECTOR_CLONES
static uint64_t sum_squares(const uint8_t *a, const uint8_t *b, Py_ssize_t n)
{
    uint64_t total = 0;
    for (Py_ssize_t start = 0; start < n; start += 1 << 15) { /* uint32 lanes cannot overflow */
        Py_ssize_t end = start + (1 << 15) < n ? start + (1 << 15) : n;
        uint32_t part = 0;
        for (Py_ssize_t i = start; i < end; i++) {
            int32_t d = (int32_t)a[i] - (int32_t)b[i];
            part += (uint32_t)(d * d);
        }
        total += part;
    }
    return total;
}

static PyObject *sse(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer a, b;
    if (!PyArg_ParseTuple(args, "y*y*", &a, &b))
        return NULL;
    PyObject *result = NULL;
    if (a.len != b.len) {
        PyErr_SetString(PyExc_ValueError, "sse: sizes do not match");
    } else {
        uint64_t total;
        Py_BEGIN_ALLOW_THREADS
        total = sum_squares(a.buf, b.buf, a.len);
        Py_END_ALLOW_THREADS
        result = PyLong_FromUnsignedLongLong(total);
    }
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    return result;
}

static PyMethodDef methods[] = {
    {"sse", sse, METH_VARARGS, "Exact sum of squared differences of two uint8 buffers."},
    {"ssim_rows", ssim_rows, METH_VARARGS, "Sum of the SSIM map over rows of one channel (see metrics.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "vqcodec._ssim",
    "The filtering loops of SSIM; see vqcodec/metrics.py.", -1, methods,
};

PyMODINIT_FUNC PyInit__ssim(void)
{
    return PyModule_Create(&module);
}
