/* vqcodec._ctxcoder: the rANS loops of index coder 2 (spec/FORMAT.md §5.5).
 *
 * Everything else -- modelling, counting, frequency tables, their parsing and
 * checks -- is Python (vqcodec/ctxcoder.py), which is also a complete,
 * slower implementation of both loops; the two are tested against each
 * other.  This file only runs the per-pixel loops that numpy cannot
 * vectorise (coding a symbol depends on the previous symbol's state, and
 * decoding a pixel depends on the decoded neighbours), one band at a time,
 * and sorts the codebook's rank lists.
 *
 * rANS with a 32-bit state, byte-wise renormalisation, L = 2^23, and
 * 12-bit frequencies (every table sums to 4096), as in F. Giesen's public
 * domain ryg_rans.  The functions release the GIL while they loop.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define SCALE_BITS 12
#define SCALE (1u << SCALE_BITS)
#define RANS_L (1u << 23)
#define MODES 5
#define LITERAL 4
#define CONTEXTS 80

/* After a decoding step x >= 2^11 (frequency >= 1, x >= 2^23 before it), so at
 * most two bytes bring it back to [2^23, 2^31).  Branch-free: the stream is
 * read from a copy with PADDING zero bytes after it; a pixel reads at most 4
 * bytes, and every pixel ends with a (predictable) check that src has not
 * passed the end, so the padding is never overrun. */
#define PADDING 8
#define RENORMALISE(x)                                  \
    do {                                                \
        uint32_t need_ = (x) < RANS_L;                  \
        (x) = need_ ? ((x) << 8) | *src : (x);          \
        src += need_;                                   \
        need_ = (x) < RANS_L;                           \
        (x) = need_ ? ((x) << 8) | *src : (x);          \
        src += need_;                                   \
    } while (0)

/* Mode context of a pixel: which of its neighbours equal each other, and
 * the mode of the pixel on its left (spec §5.5.1). */
static inline unsigned context(unsigned l, unsigned u, unsigned ul, unsigned ur, unsigned prev)
{
    unsigned c = (l == u) | ((u == ur) << 1) | ((l == ul) << 2) | ((ul == u) << 3);
    return c * MODES + prev;
}

/* encode(contexts, modes, literals, mode_freq, mode_start, lit_freq, lit_start) -> bytes
 *
 * contexts (0..79), modes (0..4), literals (ranks): uint8, one per pixel in
 * raster order (literals read only where mode == 4).  mode_freq/mode_start: uint16[80 * 5];
 * lit_freq/lit_start: uint16[256].  The caller guarantees that every symbol
 * it codes has a non-zero frequency.  Returns the stream: the final state
 * (u32 little-endian), then the renormalisation bytes in decoding order. */
static PyObject *ctx_encode(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer ctx, mode, lit, mf, ms, lf, ls;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*", &ctx, &mode, &lit, &mf, &ms, &lf, &ls))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = ctx.len;
    if (mode.len != n || lit.len != n || mf.len != 2 * CONTEXTS * MODES || ms.len != mf.len
        || lf.len != 2 * 256 || ls.len != lf.len) {
        PyErr_SetString(PyExc_ValueError, "ctxcoder.encode: array sizes do not match");
        goto done;
    }
    /* Hard bound, whatever the statistics: a symbol renormalises at most 2
     * bytes out (x < 2^31 and x_max >= 2^19), a pixel codes at most 2
     * symbols, and the state takes 4. */
    Py_ssize_t cap = 4 * n + 8;
    uint8_t *buf = PyMem_Malloc((size_t)cap);
    if (!buf) {
        PyErr_NoMemory();
        goto done;
    }
    const uint8_t *c = ctx.buf, *m = mode.buf, *li = lit.buf;
    const uint16_t *mfreq = mf.buf, *mstart = ms.buf, *lfreq = lf.buf, *lstart = ls.buf;
    uint8_t *end = buf + cap, *p = end;
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    uint32_t x = RANS_L;
    for (Py_ssize_t i = n - 1; i >= 0 && !bad; i--) {
        /* reverse order: the literal (decoded second) is coded first */
        uint32_t freqs[2], starts[2];
        int count = 0;
        if (m[i] == LITERAL) {
            freqs[count] = lfreq[li[i]];
            starts[count++] = lstart[li[i]];
        }
        unsigned t = c[i];
        if (t >= CONTEXTS || m[i] >= MODES) {
            bad = 1;
            break;
        }
        freqs[count] = mfreq[t * MODES + m[i]];
        starts[count++] = mstart[t * MODES + m[i]];
        for (int j = 0; j < count; j++) {
            uint32_t f = freqs[j];
            if (f == 0) {
                bad = 1;
                break;
            }
            uint32_t x_max = ((RANS_L >> SCALE_BITS) << 8) * f;
            while (x >= x_max) {
                *--p = (uint8_t)(x & 0xff);
                x >>= 8;
            }
            x = ((x / f) << SCALE_BITS) + (x % f) + starts[j];
        }
    }
    if (!bad) {
        p -= 4;
        p[0] = (uint8_t)x;
        p[1] = (uint8_t)(x >> 8);
        p[2] = (uint8_t)(x >> 16);
        p[3] = (uint8_t)(x >> 24);
    }
    Py_END_ALLOW_THREADS
    if (bad)
        PyErr_SetString(PyExc_ValueError, "ctxcoder.encode: a context, mode or symbol out of its table");
    else
        result = PyBytes_FromStringAndSize((const char *)p, end - p);
    PyMem_Free(buf);
done:
    PyBuffer_Release(&ctx);
    PyBuffer_Release(&mode);
    PyBuffer_Release(&lit);
    PyBuffer_Release(&mf);
    PyBuffer_Release(&ms);
    PyBuffer_Release(&lf);
    PyBuffer_Release(&ls);
    return result;
}

/* decode(stream, out, width, height, n, order, mode_freq, mode_start, lit_freq, lit_start)
 *
 * Decodes one band (stream: its u32 state, then its bytes; height: its rows)
 * into the writable buffer out, width * height indices (uint8).
 * order: uint8[n * n], order[a * n + r] = the entry of rank r from entry a.
 * Raises ValueError with a short reason on any inconsistency; never reads
 * or writes outside the buffers whatever the stream holds. */
static PyObject *ctx_decode(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer in, out, ord, mf, ms, lf, ls;
    Py_ssize_t width, height, n;
    if (!PyArg_ParseTuple(args, "y*w*nnny*y*y*y*y*", &in, &out, &width, &height, &n, &ord, &mf,
                          &ms, &lf, &ls))
        return NULL;
    const char *error = NULL;
    if (width < 1 || height < 1 || n < 1 || n > 256 || out.len != width * height
        || ord.len != n * n || mf.len != 2 * CONTEXTS * MODES || ms.len != mf.len
        || lf.len != 2 * 256 || ls.len != lf.len) {
        error = "array sizes do not match";
        goto done;
    }
    const uint8_t *order = ord.buf;
    const uint16_t *mfreq = mf.buf, *mstart = ms.buf, *lfreq = lf.buf, *lstart = ls.buf;
    uint8_t *dst = out.buf;
    uint8_t *zero = PyMem_Calloc((size_t)width + 2, 1);
    uint8_t *lit_symbol = PyMem_Malloc(SCALE);
    uint8_t *padded = PyMem_Calloc((size_t)in.len + PADDING, 1);
    if (!zero || !lit_symbol || !padded) {
        PyMem_Free(zero);
        PyMem_Free(lit_symbol);
        PyMem_Free(padded);
        PyErr_NoMemory();
        goto release;
    }
    Py_BEGIN_ALLOW_THREADS
    memcpy(padded, in.buf, (size_t)in.len);
    const uint8_t *src = padded, *src_end = padded + in.len;
    /* slot -> literal symbol (the caller checked the table sums to 4096 or is empty) */
    memset(lit_symbol, 0, SCALE);
    for (unsigned s = 0; s < 256; s++)
        for (unsigned k = 0; k < lfreq[s] && lstart[s] + k < SCALE; k++)
            lit_symbol[lstart[s] + k] = (uint8_t)s;
    if (in.len < 4) {
        error = "stream shorter than its state";
    } else {
        uint32_t x = (uint32_t)src[0] | ((uint32_t)src[1] << 8) | ((uint32_t)src[2] << 16)
                     | ((uint32_t)src[3] << 24);
        src += 4;
        for (Py_ssize_t y = 0; y < height && !error; y++) {
            uint8_t *row = dst + y * width;
            const uint8_t *up = y ? row - width : zero;
            unsigned prev = LITERAL, left = 0;
            for (Py_ssize_t i = 0; i < width; i++) {
                /* candidates in mode order: L, U, UR, UL, then the literal */
                unsigned nb[MODES];
                nb[0] = left;
                nb[1] = up[i];
                nb[2] = i + 1 < width ? up[i + 1] : 0;
                nb[3] = i ? up[i - 1] : 0;
                unsigned t = context(nb[0], nb[1], nb[3], nb[2], prev) * MODES;
                uint32_t slot = x & (SCALE - 1);
                /* the mode: how many later starts are <= slot (zero-frequency
                 * modes share the next start, so they are stepped over) */
                const uint16_t *st = mstart + t;
                unsigned s = (slot >= st[1]) + (slot >= st[2]) + (slot >= st[3]) + (slot >= st[4]);
                uint32_t f = mfreq[t + s];
                if (f == 0 || slot < st[s]) {
                    error = "a mode context without a table";
                    break;
                }
                x = f * (x >> SCALE_BITS) + slot - st[s];
                RENORMALISE(x);
                if (s == LITERAL) {
                    slot = x & (SCALE - 1);
                    unsigned r = lit_symbol[slot];
                    if (lfreq[r] == 0 || slot - lstart[r] >= lfreq[r] || (Py_ssize_t)r >= n
                        || (Py_ssize_t)left >= n) {
                        error = "a literal outside the table";
                        break;
                    }
                    x = lfreq[r] * (x >> SCALE_BITS) + slot - lstart[r];
                    RENORMALISE(x);
                    nb[LITERAL] = order[left * n + r];
                }
                unsigned value = nb[s];
                if ((Py_ssize_t)value >= n) {
                    error = "an index >= k";
                    break;
                }
                if (src > src_end) {
                    error = "stream ends early";
                    break;
                }
                row[i] = (uint8_t)value;
                left = value;
                prev = s;
            }
        }
        if (!error && (x != RANS_L || src != src_end))
            error = src != src_end ? "bytes left after the last pixel" : "final state is wrong";
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(zero);
    PyMem_Free(lit_symbol);
    PyMem_Free(padded);
done:
    if (error)
        PyErr_Format(PyExc_ValueError, "%s", error);
release:
    PyBuffer_Release(&in);
    PyBuffer_Release(&out);
    PyBuffer_Release(&ord);
    PyBuffer_Release(&mf);
    PyBuffer_Release(&ms);
    PyBuffer_Release(&lf);
    PyBuffer_Release(&ls);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

/* rank_order(codebook, n, channels) -> bytes of n * n: row a lists the entries
 * by squared distance from entry a, ties by index (spec §5.5.2).  Each row is a
 * radix sort of the keys distance * 512 + index (distance < 2^19 for at most
 * 4 channels, so 28-bit keys: 4 passes of 7 bits). */
static PyObject *ctx_rank_order(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer book;
    Py_ssize_t n, channels;
    if (!PyArg_ParseTuple(args, "y*nn", &book, &n, &channels))
        return NULL;
    PyObject *result = NULL;
    if (n < 1 || n > 256 || channels < 1 || channels > 4 || book.len != n * channels) {
        PyErr_SetString(PyExc_ValueError, "rank_order: codebook size does not match");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, n * n);
    if (!result)
        goto done;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result);
    const uint8_t *cb = book.buf;
    Py_BEGIN_ALLOW_THREADS
    uint32_t keys[256], tmp[256];
    for (Py_ssize_t a = 0; a < n; a++) {
        for (Py_ssize_t b = 0; b < n; b++) {
            uint32_t d = 0;
            for (Py_ssize_t c = 0; c < channels; c++) {
                int diff = (int)cb[a * channels + c] - (int)cb[b * channels + c];
                d += (uint32_t)(diff * diff);
            }
            keys[b] = (d << 9) | (uint32_t)b;
        }
        uint32_t *src = keys, *dst = tmp;
        for (int shift = 0; shift < 28; shift += 7) {
            unsigned count[129] = {0};
            for (Py_ssize_t i = 0; i < n; i++)
                count[((src[i] >> shift) & 127) + 1]++;
            for (int j = 0; j < 128; j++)
                count[j + 1] += count[j];
            for (Py_ssize_t i = 0; i < n; i++)
                dst[count[(src[i] >> shift) & 127]++] = src[i];
            uint32_t *t = src;
            src = dst;
            dst = t;
        }
        for (Py_ssize_t r = 0; r < n; r++)
            out[a * n + r] = (uint8_t)(src[r] & 511);
    }
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&book);
    return result;
}

static PyMethodDef methods[] = {
    {"rank_order", ctx_rank_order, METH_VARARGS, "The rank lists of a codebook (see ctxcoder.py)."},
    {"encode", ctx_encode, METH_VARARGS, "rANS-code the mode and literal symbols (see ctxcoder.py)."},
    {"decode", ctx_decode, METH_VARARGS, "Decode an index map into a writable buffer (see ctxcoder.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "vqcodec._ctxcoder",
    "The per-pixel loops of index coder 2; see vqcodec/ctxcoder.py.", -1, methods,
};

PyMODINIT_FUNC PyInit__ctxcoder(void)
{
    return PyModule_Create(&module);
}
