/* vqcodec._ctxcoder: the rANS loops of index coder 2 (spec/FORMAT.md §5.4).
 *
 * Everything else -- modelling, counting, frequency tables, their parsing and
 * checks -- is Python (vqcodec/ctxcoder.py), which is also a complete,
 * slower implementation of both loops; the two are tested against each
 * other.  This file only runs the per-pixel loops that numpy cannot
 * vectorise (coding a symbol depends on the previous symbol's state, and
 * decoding a pixel depends on the decoded neighbours), works out a band's
 * symbols and counts them in one pass (numpy's ctxcoder.symbols() is the
 * definition), and sorts the codebook's rank lists.  There are two decoders: decode() takes one band
 * step by step with every check where it can fail, and decode_image() the
 * whole image fast (two bands in lockstep on each of several threads,
 * writing indices or pixels), handing any band that fails a check to the
 * first.
 *
 * rANS with a 32-bit state, byte-wise renormalisation, L = 2^23, and
 * 12-bit frequencies (every table sums to 4096), as in F. Giesen's public
 * domain ryg_rans.  The functions release the GIL while they loop.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>
#include "_rans.h"
#include "_workers.h"
#include "_ranks.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

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
 * the mode of the pixel on its left (spec §5.4.1). */
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
            x = rans_put(x, f, starts[j], &p);
        }
    }
    if (!bad)
        rans_put_state(x, &p);
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

/* symbols(grid, width, n, order) -> (contexts, modes, ranks, mode_counts, literal_counts)
 *
 * The symbols of one band (grid: its rows of width indices, each < n; the
 * row above counts as outside), as ctxcoder.symbols() defines them, and
 * their counts: mode_counts[c * 5 + m] and literal_counts[r], uint64 each.
 * order: uint8[n * n] (rank_order). */
static PyObject *ctx_symbols(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer grid, ord;
    Py_ssize_t width, n;
    if (!PyArg_ParseTuple(args, "y*nny*", &grid, &width, &n, &ord))
        return NULL;
    PyObject *result = NULL, *ctx = NULL, *mode = NULL, *lit = NULL, *mc = NULL, *lc = NULL;
    uint8_t *zero = NULL, rank[256 * 256];
    Py_ssize_t count = grid.len;
    if (width < 1 || n < 1 || n > 256 || count % width || ord.len != n * n) {
        PyErr_SetString(PyExc_ValueError, "ctxcoder.symbols: array sizes do not match");
        goto done;
    }
    ctx = PyBytes_FromStringAndSize(NULL, count);
    mode = PyBytes_FromStringAndSize(NULL, count);
    lit = PyBytes_FromStringAndSize(NULL, count);
    mc = PyBytes_FromStringAndSize(NULL, CONTEXTS * MODES * 8);
    lc = PyBytes_FromStringAndSize(NULL, 256 * 8);
    zero = PyMem_Calloc((size_t)width + 2, 1);
    if (!ctx || !mode || !lit || !mc || !lc || !zero) {
        if (!zero)
            PyErr_NoMemory();
        goto done;
    }
    const uint8_t *g = grid.buf, *order = ord.buf;
    uint8_t *c = (uint8_t *)PyBytes_AS_STRING(ctx), *m = (uint8_t *)PyBytes_AS_STRING(mode),
            *r = (uint8_t *)PyBytes_AS_STRING(lit);
    uint64_t *mcount = (uint64_t *)PyBytes_AS_STRING(mc), *lcount = (uint64_t *)PyBytes_AS_STRING(lc);
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    memset(mcount, 0, CONTEXTS * MODES * 8);
    memset(lcount, 0, 256 * 8);
    for (Py_ssize_t a = 0; a < n; a++) /* rank[a][v]: the position of v in order[a] */
        for (Py_ssize_t k = 0; k < n; k++)
            rank[a * 256 + order[a * n + k]] = (uint8_t)k;
    for (Py_ssize_t y = 0; y < count / width && !bad; y++) {
        const uint8_t *row = g + y * width, *up = y ? row - width : zero + 1;
        unsigned prev = LITERAL, left = 0;
        for (Py_ssize_t i = 0; i < width; i++) {
            unsigned v = row[i], u = up[i], ul = i ? up[i - 1] : 0, ur = i + 1 < width ? up[i + 1] : 0;
            if (v >= (unsigned)n) {
                bad = 1;
                break;
            }
            unsigned s = v == left ? 0 : v == u ? 1 : v == ur ? 2 : v == ul ? 3 : LITERAL;
            unsigned t = context(left, u, ul, ur, prev);
            Py_ssize_t p = y * width + i;
            c[p] = (uint8_t)t;
            m[p] = (uint8_t)s;
            r[p] = s == LITERAL ? rank[left * 256 + v] : 0;
            mcount[t * MODES + s]++;
            lcount[r[p]] += s == LITERAL;
            left = v;
            prev = s;
        }
    }
    Py_END_ALLOW_THREADS
    if (bad)
        PyErr_SetString(PyExc_ValueError, "ctxcoder.symbols: an index is not below k");
    else
        result = PyTuple_Pack(5, ctx, mode, lit, mc, lc);
done:
    Py_XDECREF(ctx);
    Py_XDECREF(mode);
    Py_XDECREF(lit);
    Py_XDECREF(mc);
    Py_XDECREF(lc);
    PyMem_Free(zero);
    PyBuffer_Release(&grid);
    PyBuffer_Release(&ord);
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

/* ------------------------------------------------------------------------
 * The fast decoder: two bands in lockstep.
 *
 * ctx_decode above follows §5.4.4 step by step, with every check at the
 * pixel where it fails, and is what names an error.  Decoding a pixel is a
 * chain of dependent loads and multiplies, so one band at a time leaves most
 * of a core idle; here two bands (lanes) advance together, pixel by pixel.
 * What the row above gives the context (U == UR, UL == U) and the candidate
 * indices U, UR, UL are laid out for the whole row before it is decoded.  The
 * renormalisation reads the 0, 1 or 2 bytes that bring x back to
 * [2^23, 2^31) at once, from the leading zeros of x.
 *
 * Only a symbol of frequency 0 (a context without a table, a literal without
 * a literal table) is checked, and not at every pixel: the buckets of such a
 * mode are marked as if they held a boundary, so it is only ever decoded on
 * that rare path, which looks it up in fails.  Such a symbol leaves x below
 * 2^12 (its start is 0 and the slot is added), from where the next steps keep
 * it below 2^31; the renormalisation then still reads at most 2 bytes.  The
 * flag and the end of each lane's bytes (a row can overrun them by at most 4
 * bytes a pixel, and a pixel reads 4 bytes from where it is: all within the
 * zero padding of 4 * width + 16 bytes) are looked at once a row.  Then,
 * and when a band does not end exactly, the caller decodes that band again
 * with ctx_decode, which names the first error or, if there is none after
 * all, gives the indices.  Nothing else needs a check: with tables that
 * read_tables accepted, x stays in [2^23, 2^31) from a state in that range
 * (then the two renormalisation rules agree), and every index is a
 * neighbour's (or 0) or order[L][r] with r < t <= n. */

#define MAX_LANES 2
#define BUCKET_SHIFT 6
#define BUCKETS (SCALE >> BUCKET_SHIFT)

typedef struct {
    uint32_t mode[CONTEXTS * MODES];       /* freq | start << 16 */
    uint16_t mstart[CONTEXTS * MODES + 8];
    /* bucket[t * BUCKETS + b]: the mode of every slot of bucket b (slots
     * b * 64 .. b * 64 + 63) of the table at t, or 0x80 when the bucket holds
     * a boundary between modes (then the starts are compared) or a mode that
     * fails (then it is looked up in fails) */
    uint8_t bucket[CONTEXTS * MODES * BUCKETS];
    /* fails[t + m]: mode m of the table at t has frequency 0 (a context
     * without a table), or is the literal and there is no literal table */
    uint8_t fails[CONTEXTS * MODES];
    uint32_t lit_fs[SCALE];                /* slot -> freq | start << 16 of its rank (0: no table) */
    uint8_t lit_rank[SCALE];               /* slot -> rank */
    uint8_t order[256 * 256];              /* order[a * 256 + r] (here, not behind a pointer: one load less a literal) */
} Tables;

typedef struct {
    uint32_t x;
    const uint8_t *src, *end; /* padded copy of the bytes after the state; end of the bytes */
    uint8_t *out;             /* the band's rows: indices, or pixels */
    Py_ssize_t rows;
    uint8_t *mem;             /* what holds the copy */
} Lane;

typedef struct {
    const Tables *T;
    Py_ssize_t width;
    const uint8_t *book; /* entries padded to 4 bytes (3 channels) when writing pixels, else NULL */
    int channels;
    uint8_t *ring;  /* 2 rows of (width + 2) * G indices, lanes interleaved, 0 at both ends */
    uint32_t *cand; /* per position: U | UR << 8 | UL << 16 | ((U == UR) * 2 + (UL == U) * 8) * 25 << 24 */
} Decoder;

/* x in [2^11, 2^31): the bytes that bring it to [2^23, 2^31), at most 2, in
 * one go: the next four bytes, big-endian, go under x and the pair is shifted
 * by as many bytes as x needs (none leaves x as it is) */
#define RENORM(x, src)                                                                  \
    do {                                                                                \
        unsigned sh_ = ((unsigned)__builtin_clz((x) | 0x800u) - 1u) & ~7u;              \
        uint32_t b_ = (uint32_t)(src)[0] << 24 | (uint32_t)(src)[1] << 16               \
                      | (uint32_t)(src)[2] << 8 | (src)[3];                             \
        (x) = (uint32_t)((((uint64_t)(x) << 32 | b_) << sh_) >> 32);                    \
        (src) += sh_ >> 3;                                                              \
    } while (0)

/* One pixel of lane g at column i.  l##g: the left neighbour, p##g: its mode * 5. */
#define STEP(g)                                                                                    \
    do {                                                                                           \
        size_t at_ = (size_t)i * G + (g);                                                          \
        uint32_t c_ = cand[at_];                                                                   \
        size_t t_ = (c_ >> 24) + ((l##g == up[at_ + G]) + 4 * (l##g == up[at_])) * 25 + p##g;     \
        uint32_t slot_ = x##g & (SCALE - 1);                                                       \
        size_t s_ = T->bucket[(size_t)t_ * BUCKETS + (slot_ >> BUCKET_SHIFT)];                    \
        if (__builtin_expect(s_ >= 0x80, 0)) { /* compare the starts, and check the mode */       \
            const uint16_t *st_ = T->mstart + t_;                                                  \
            s_ = (slot_ >= st_[1]) + (slot_ >= st_[2]) + (slot_ >= st_[3]) + (slot_ >= st_[4]);   \
            failed |= T->fails[t_ + s_];                                                           \
        }                                                                                          \
        uint32_t e_ = T->mode[t_ + s_];                                                            \
        x##g = (e_ & 0xffff) * (x##g >> SCALE_BITS) + slot_ - (e_ >> 16);                          \
        RENORM(x##g, src##g);                                                                      \
        unsigned v_ = (unsigned)(((uint64_t)c_ << 8 | l##g) >> (8 * s_)) & 0xff;                   \
        if (s_ == LITERAL) {                                                                       \
            uint32_t slot2_ = x##g & (SCALE - 1), d_ = T->lit_fs[slot2_];                          \
            x##g = (d_ & 0xffff) * (x##g >> SCALE_BITS) + slot2_ - (d_ >> 16);                     \
            RENORM(x##g, src##g);                                                                  \
            v_ = T->order[(size_t)l##g * 256 + T->lit_rank[slot2_]];                               \
        }                                                                                          \
        cur[at_ + G] = (uint8_t)v_;                                                                \
        l##g = v_;                                                                                 \
        p##g = (unsigned)s_ * MODES;                                                               \
    } while (0)

/* Lane g's row, just decoded into the interleaved ring row cur, to its output.
 * (size_t indices and unrolled: ~4 instructions a pixel rather than 9.) */
#if defined(__GNUC__) && !defined(__clang__)
#define UNROLL4 _Pragma("GCC unroll 4")
#else
#define UNROLL4
#endif
static inline void emit_row(const Decoder *D, const uint8_t *cur, int G, int g, uint8_t *out)
{
    size_t w = (size_t)D->width;
    const uint8_t *book = D->book, *c = cur + G + g;
    if (!book) {
        UNROLL4
        for (size_t i = 0; i < w; i++)
            out[i] = c[i * G];
        return;
    }
    switch (D->channels) {
    case 1:
        UNROLL4
        for (size_t i = 0; i < w; i++)
            out[i] = book[c[i * G]];
        break;
    case 2:
        UNROLL4
        for (size_t i = 0; i < w; i++)
            memcpy(out + 2 * i, book + 2 * (size_t)c[i * G], 2);
        break;
    case 3: /* 4-byte stores from the padded entries; the row's last pixel exactly */
        UNROLL4
        for (size_t i = 0; i + 1 < w; i++)
            memcpy(out + 3 * i, book + 4 * (size_t)c[i * G], 4);
        memcpy(out + 3 * (w - 1), book + 4 * (size_t)c[(w - 1) * G], 3);
        break;
    default:
        UNROLL4
        for (size_t i = 0; i < w; i++)
            memcpy(out + 4 * i, book + 4 * (size_t)c[i * G], 4);
        break;
    }
}

#define LANE_VARS(g)                                                                               \
    uint32_t x##g = lanes[(g) < G ? (g) : 0].x;                                                    \
    const uint8_t *src##g = lanes[(g) < G ? (g) : 0].src;                                          \
    unsigned l##g = 0, p##g = 0

/* Rows y0 .. y1 - 1 of G lanes in lockstep: 0, or 1 when a check failed
 * (the lanes' states are then meaningless). */
static inline __attribute__((always_inline)) int run_lanes(const Decoder *D, Lane *lanes, const int G,
                                                           Py_ssize_t y0, Py_ssize_t y1)
{
    const Tables *T = D->T;
    const Py_ssize_t w = D->width, row_out = D->book ? w * D->channels : w;
    const uint32_t *cand = D->cand;
    unsigned failed = 0;
    LANE_VARS(0);
    LANE_VARS(1);
    for (Py_ssize_t y = y0; y < y1; y++) {
        uint8_t *cur = D->ring + (y & 1) * (w + 2) * G;
        const uint8_t *up = D->ring + ((y + 1) & 1) * (w + 2) * G;
        uint32_t *restrict fill = D->cand; /* (restrict: the loop vectorises) */
        const uint8_t *restrict above = up;
        for (Py_ssize_t j = 0; j < w * G; j++) {
            uint32_t ul = above[j], u = above[j + G], ur = above[j + 2 * G];
            uint32_t pattern = ((uint32_t)(u == ur) << 1) | ((uint32_t)(ul == u) << 3);
            fill[j] = u | (ur << 8) | (ul << 16) | (pattern * MODES * MODES) << 24;
        }
        l0 = l1 = 0;
        p0 = p1 = LITERAL * MODES;
        for (Py_ssize_t i = 0; i < w; i++) {
            STEP(0);
            if (G > 1)
                STEP(1);
        }
        if (failed || src0 > lanes[0].end || (G > 1 && src1 > lanes[G - 1].end))
            return 1;
        for (int g = 0; g < G; g++)
            emit_row(D, cur, G, g, lanes[g].out + y * row_out);
    }
    lanes[0].x = x0;
    lanes[0].src = src0;
    if (G > 1) {
        lanes[G - 1].x = x1;
        lanes[G - 1].src = src1;
    }
    return 0;
}

/* G lanes from row y0 to y1; y0 = 0 starts the bands, with 0 above them, and
 * y0 > 0 goes on with the first lane of two after the second has ended. */
DECODER_CLONES
static int run_group(const Decoder *D, Lane *lanes, int G, Py_ssize_t y0, Py_ssize_t y1)
{
    Py_ssize_t w = D->width;
    if (y0 == 0) {
        memset(D->ring, 0, 2 * (size_t)(w + 2) * (size_t)G);
    } else if (G == 1) { /* the ring of two lanes, lane 0's part, becomes a ring of one */
        uint8_t *up = D->ring + ((y0 + 1) & 1) * (w + 2) * 2, *one = D->ring + ((y0 + 1) & 1) * (w + 2);
        for (Py_ssize_t i = 0; i < w + 2; i++)
            one[i] = up[2 * i];
        memset(D->ring + (y0 & 1) * (w + 2), 0, (size_t)(w + 2));
        one[0] = one[w + 1] = 0;
    }
    return G == 1 ? run_lanes(D, lanes, 1, y0, y1) : run_lanes(D, lanes, 2, y0, y1);
}

/* ------------------------------------------------------------------------
 * One image on several threads.  The calling thread and threads - 1 helpers
 * (started with CPython's portable PyThread API; they touch no Python
 * object) share the work through two counters: first the rank lists, a row
 * at a time, then the bands, a pair (one group of lanes) at a time, so that
 * a thread that finishes early takes more. */

typedef struct {
    Tables T;
    const uint8_t *book; /* the codebook, n * channels */
    unsigned n, channels;
    Py_ssize_t width, band_rows, count, row_out;
    uint8_t book4[256 * 4]; /* the entries padded to 4 bytes (3 channels) */
    const uint8_t *rank_cb; /* the codebook as rank_row takes it (rank_book), rank_stride apart */
    unsigned rank_stride;
    uint8_t rank_pad[256 * 4];
    int pixels;
    Lane *lanes;
    uint8_t *failed; /* per band: it did not decode cleanly */
    uint32_t next_row, rows_done, next_pair;
    int nomem[MAX_THREADS];
} Job;

static void decode_pairs(Job *J, int who)
{
    rank_rows(J->rank_cb, J->n, J->rank_stride, J->T.order, NULL, &J->next_row, &J->rows_done);
    Py_ssize_t w = J->width;
    uint8_t *ring = PyMem_RawMalloc(2 * (size_t)(w + 2) * MAX_LANES);
    uint32_t *cand = PyMem_RawMalloc((size_t)w * MAX_LANES * sizeof *cand);
    if (!ring || !cand) {
        J->nomem[who] = 1;
        PyMem_RawFree(ring);
        PyMem_RawFree(cand);
        return;
    }
    Decoder D = {&J->T, w, J->pixels ? J->book4 : NULL, (int)J->channels, ring, cand};
    for (;;) { /* bands 2p and 2p + 1 in lockstep (those whose state was good) */
        Py_ssize_t first = (Py_ssize_t)CLAIM(J->next_pair) * MAX_LANES;
        if (first >= J->count)
            break;
        Lane group[MAX_LANES];
        Py_ssize_t where[MAX_LANES];
        int G = 0;
        for (Py_ssize_t b = first; b < J->count && b < first + MAX_LANES; b++)
            if (!J->failed[b]) {
                where[G] = b;
                group[G++] = J->lanes[b];
            }
        if (!G)
            continue;
        Py_ssize_t common = group[G - 1].rows; /* only the image's last band is shorter */
        int bad = run_group(&D, group, G, 0, common);
        if (!bad && common < group[0].rows)
            bad = run_group(&D, group, 1, common, group[0].rows);
        for (int g = 0; g < G; g++)
            if (bad || group[g].x != RANS_L || group[g].src != group[g].end)
                J->failed[where[g]] = 1;
    }
    PyMem_RawFree(ring);
    PyMem_RawFree(cand);
}

static void decode_pairs_of(void *job, int who) { decode_pairs(job, who); }

/* decode_image(streams, out, width, band_rows, book, channels, pixels, mode_freq, mode_start,
 *              lit_freq, lit_start, threads) -> list of int
 *
 * streams: every band's stream (state, then bytes), top to bottom; out: the
 * writable buffer of the image, its indices or (pixels true) its pixels of
 * `channels` bytes.  book: the codebook, n * channels bytes.  The last band
 * may have fewer rows than band_rows; out's size says how many.  Returns the
 * bands that did not decode cleanly (empty when all is well): decode those
 * with decode().  The tables must be those read_tables accepted. */
static PyObject *ctx_decode_image(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *seq;
    Py_buffer out, bk, mf, ms, lf, ls;
    Py_ssize_t width, band_rows;
    int channels, pixels, threads;
    if (!PyArg_ParseTuple(args, "Ow*nny*ipy*y*y*y*i", &seq, &out, &width, &band_rows, &bk, &channels,
                          &pixels, &mf, &ms, &lf, &ls, &threads))
        return NULL;
    PyObject *fast = NULL, *result = NULL;
    Py_buffer *streams = NULL;
    Job *J = NULL;
    Py_ssize_t count = 0, got = 0, n = channels >= 1 ? bk.len / channels : 0;
    Py_ssize_t item = pixels ? channels : 1;
    fast = PySequence_Fast(seq, "decode_image: streams must be a sequence");
    if (!fast)
        goto release;
    count = PySequence_Fast_GET_SIZE(fast);
    if (width < 1 || band_rows < 1 || channels < 1 || channels > (pixels ? 4 : MAX_ENTRY)
        || bk.len % channels || n < 1
        || n > 256 || count < 1 || mf.len != 2 * CONTEXTS * MODES || ms.len != mf.len
        || lf.len != 2 * 256 || ls.len != lf.len || out.len % (width * item)
        || out.len / (width * item) > count * band_rows
        || out.len / (width * item) <= (count - 1) * band_rows) {
        PyErr_SetString(PyExc_ValueError, "decode_image: array sizes do not match");
        goto release;
    }
    Py_ssize_t total_rows = out.len / (width * item);
    streams = PyMem_Calloc((size_t)count, sizeof *streams);
    J = PyMem_Calloc(1, sizeof *J);
    if (J) {
        J->lanes = PyMem_Calloc((size_t)count, sizeof *J->lanes);
        J->failed = PyMem_Calloc((size_t)count, 1);
    }
    if (!streams || !J || !J->lanes || !J->failed) {
        PyErr_NoMemory();
        goto release;
    }
    for (; got < count; got++)
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(fast, got), &streams[got], PyBUF_SIMPLE) < 0)
            goto release;
    J->book = bk.buf;
    J->n = (unsigned)n;
    J->channels = (unsigned)channels;
    J->width = width;
    J->band_rows = band_rows;
    J->count = count;
    J->pixels = pixels;
    J->rank_stride = (unsigned)channels;
    J->rank_cb = rank_book(J->book, (unsigned)n, &J->rank_stride, J->rank_pad);
    int stride = channels == 3 ? 4 : channels;
    for (Py_ssize_t e = 0; pixels && e < n; e++) /* pixels: at most 4 channels */
        memcpy(J->book4 + stride * e, J->book + channels * e, (size_t)channels);
    int nomem = 0;
    Py_BEGIN_ALLOW_THREADS
    Tables *T = &J->T;
    const uint16_t *mfreq = mf.buf, *mstart = ms.buf, *lfreq = lf.buf, *lstart = ls.buf;
    for (int j = 0; j < CONTEXTS * MODES; j++) {
        T->mode[j] = mfreq[j] | ((uint32_t)mstart[j] << 16);
        T->mstart[j] = mstart[j];
    }
    unsigned covered = 0;
    for (unsigned r = 0; r < 256; r++)
        for (unsigned k = 0; k < lfreq[r] && lstart[r] + k < SCALE; k++, covered++) {
            T->lit_fs[lstart[r] + k] = lfreq[r] | ((uint32_t)lstart[r] << 16);
            T->lit_rank[lstart[r] + k] = (uint8_t)r;
        }
    if (covered != SCALE) /* no literal table: any literal fails (below), and leaves x small */
        memset(T->lit_fs, 0, sizeof T->lit_fs);
    for (int j = 0; j < CONTEXTS * MODES; j++)
        T->fails[j] = mfreq[j] == 0 || (j % MODES == LITERAL && covered != SCALE);
    for (int t = 0; t < CONTEXTS * MODES; t += MODES) /* the modes' symbol of each bucket */
        for (unsigned b = 0; b < BUCKETS; b++) {
            unsigned lo = b << BUCKET_SHIFT, hi = lo + (1u << BUCKET_SHIFT) - 1, first = 0, last = 0;
            for (int m = 1; m < MODES; m++) {
                first += lo >= mstart[t + m];
                last += hi >= mstart[t + m];
            }
            T->bucket[t * BUCKETS + b] = (uint8_t)(first == last && !T->fails[t + first] ? first : 0x80);
        }
    /* each lane: a padded copy of its bytes */
    for (Py_ssize_t b = 0; b < count; b++) {
        Lane *L = &J->lanes[b];
        Py_ssize_t len = streams[b].len;
        L->rows = b + 1 < count ? band_rows : total_rows - b * band_rows;
        L->out = (uint8_t *)out.buf + b * band_rows * width * item;
        if (len < 4) {
            J->failed[b] = 1;
            continue;
        }
        L->mem = PyMem_RawMalloc((size_t)(len - 4) + 4 * (size_t)width + 16);
        if (!L->mem) {
            nomem = 1;
            break;
        }
        memcpy(L->mem, (const uint8_t *)streams[b].buf + 4, (size_t)(len - 4));
        memset(L->mem + len - 4, 0, 4 * (size_t)width + 16);
        const uint8_t *s4 = streams[b].buf;
        L->x = (uint32_t)s4[0] | ((uint32_t)s4[1] << 8) | ((uint32_t)s4[2] << 16) | ((uint32_t)s4[3] << 24);
        L->src = L->mem;
        L->end = L->mem + (len - 4);
        if (L->x < RANS_L || L->x >= (1u << 31))
            J->failed[b] = 1; /* the spec's rule and ours could differ: the checked loop decides */
    }
    if (!nomem) {
        Py_ssize_t pairs = (count + MAX_LANES - 1) / MAX_LANES;
        int want = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
        if (want > pairs)
            want = (int)pairs;
        int ran = run_workers(decode_pairs_of, J, want);
        for (int t = 0; t < ran; t++)
            nomem |= J->nomem[t];
    }
    for (Py_ssize_t b = 0; b < count; b++)
        PyMem_RawFree(J->lanes[b].mem);
    Py_END_ALLOW_THREADS
    if (nomem) {
        PyErr_NoMemory();
        goto release;
    }
    result = PyList_New(0);
    for (Py_ssize_t b = 0; result && b < count; b++)
        if (J->failed[b]) {
            PyObject *v = PyLong_FromSsize_t(b);
            if (!v || PyList_Append(result, v) < 0)
                Py_CLEAR(result);
            Py_XDECREF(v);
        }
release:
    for (Py_ssize_t b = 0; b < got; b++)
        PyBuffer_Release(&streams[b]);
    PyMem_Free(streams);
    if (J) {
        PyMem_Free(J->lanes);
        PyMem_Free(J->failed);
        PyMem_Free(J);
    }
    Py_XDECREF(fast);
    PyBuffer_Release(&out);
    PyBuffer_Release(&bk);
    PyBuffer_Release(&mf);
    PyBuffer_Release(&ms);
    PyBuffer_Release(&lf);
    PyBuffer_Release(&ls);
    return result;
}

/* parse_tables(data, n) -> (mode_freq, mode_start, lit_freq, lit_start, offset) or None
 *
 * The table part of coder-2 INDX data (§5.4.3), as ctxcoder.read_tables reads
 * it: uint16 frequencies and starts (80 * 5 and 256 of each) and the offset of
 * the band size.  None when any rule is broken: read_tables then names it. */
static PyObject *ctx_parse_tables(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer in;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "y*n", &in, &n))
        return NULL;
    uint16_t mf[CONTEXTS * MODES], ms[CONTEXTS * MODES], lf[256], ls[256];
    memset(mf, 0, sizeof mf);
    memset(lf, 0, sizeof lf);
    const uint8_t *d = in.buf;
    Py_ssize_t len = in.len, pos = CONTEXTS / 8;
    int ok = len >= CONTEXTS / 8;
    for (int c = 0; ok && c < CONTEXTS; c++) {
        if (!(d[c / 8] >> (c % 8) & 1))
            continue;
        if (pos >= len) {
            ok = 0;
            break;
        }
        unsigned mask = d[pos++], sum = 0, last = MODES;
        if (!mask || mask >> MODES) {
            ok = 0;
            break;
        }
        for (int m = MODES - 1; m >= 0; m--)
            if (mask >> m & 1) {
                last = (unsigned)m;
                break;
            }
        for (unsigned m = 0; ok && m < last; m++) {
            unsigned f = 0;
            if (!(mask >> m & 1))
                continue;
            ok = v14(d, len, &pos, &f) && f >= 1;
            sum += f;
            mf[c * MODES + m] = (uint16_t)f;
        }
        ok = ok && sum < SCALE;
        if (ok)
            mf[c * MODES + last] = (uint16_t)(SCALE - sum);
    }
    unsigned count = 0, sum = 0;
    ok = ok && v14(d, len, &pos, &count) && count <= (unsigned)n;
    for (unsigned r = 0; ok && count && r + 1 < count; r++) {
        unsigned f = 0; /* set by v14 when it succeeds; 0 keeps -O3 -Wall quiet otherwise */
        ok = v14(d, len, &pos, &f);
        sum += f;
        lf[r] = (uint16_t)f;
    }
    if (ok && count) {
        ok = sum < SCALE;
        lf[count - 1] = (uint16_t)(SCALE - sum);
    }
    PyBuffer_Release(&in);
    if (!ok)
        Py_RETURN_NONE;
    for (int c = 0; c < CONTEXTS; c++) {
        unsigned start = 0;
        for (int m = 0; m < MODES; m++) {
            ms[c * MODES + m] = (uint16_t)start;
            start += mf[c * MODES + m];
        }
    }
    unsigned start = 0;
    for (int r = 0; r < 256; r++) {
        ls[r] = (uint16_t)start;
        start += lf[r];
    }
    return Py_BuildValue("y#y#y#y#n", (const char *)mf, (Py_ssize_t)sizeof mf, (const char *)ms,
                         (Py_ssize_t)sizeof ms, (const char *)lf, (Py_ssize_t)sizeof lf,
                         (const char *)ls, (Py_ssize_t)sizeof ls, pos);
}

/* rank_order(codebook, n, channels) -> bytes of n * n: row a lists the entries
 * by squared distance from entry a, ties by index (spec §5.4.2). */
static PyObject *ctx_rank_order(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer book;
    Py_ssize_t n, channels;
    if (!PyArg_ParseTuple(args, "y*nn", &book, &n, &channels))
        return NULL;
    PyObject *result = NULL;
    if (n < 1 || n > 256 || channels < 1 || channels > MAX_ENTRY || book.len != n * channels) {
        PyErr_SetString(PyExc_ValueError, "rank_order: codebook size does not match");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, n * n);
    if (!result)
        goto done;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result), pad[256 * 4];
    unsigned stride = (unsigned)channels;
    Py_BEGIN_ALLOW_THREADS
    const uint8_t *cb = rank_book(book.buf, (unsigned)n, &stride, pad);
    for (Py_ssize_t a = 0; a < n; a++)
        rank_row(cb, (unsigned)n, stride, (unsigned)a, out + a * n);
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&book);
    return result;
}

/* ------------------------------------------------------------------------
 * pages(size): a writable buffer for a decoded image.
 *
 * A fresh image of a megabyte or more is hundreds of 4 KiB pages, each
 * faulted in when first written: after another library has freed memory
 * (Pillow, say) that was 0.5 ms of a Kodak photo's ~3 ms decode.  From a
 * megabyte up the buffer is asked for in 2 MiB-aligned huge pages (Linux,
 * where transparent huge pages are enabled or "madvise"), as numpy does
 * from 4 MiB; elsewhere it is ordinary memory.  Not zeroed. */

typedef struct {
    PyObject_HEAD
    void *mem;
    Py_ssize_t size;
} Pages;

static int pages_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
    Pages *p = (Pages *)self;
    return PyBuffer_FillInfo(view, self, p->mem, p->size, 0, flags);
}

static void pages_dealloc(PyObject *self)
{
    free(((Pages *)self)->mem);
    Py_TYPE(self)->tp_free(self);
}

static PyBufferProcs pages_as_buffer = {pages_getbuffer, NULL};

static PyTypeObject PagesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "vqcodec._ctxcoder.Pages",
    .tp_basicsize = sizeof(Pages),
    .tp_dealloc = pages_dealloc,
    .tp_as_buffer = &pages_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Memory for a decoded image (see pages()).",
};

static PyObject *ctx_pages(PyObject *self, PyObject *args)
{
    (void)self;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "n", &size))
        return NULL;
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "pages: negative size");
        return NULL;
    }
    void *mem = NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const size_t huge = (size_t)1 << 21;
    if ((size_t)size >= ((size_t)1 << 20)) {
        size_t rounded = ((size_t)size + huge - 1) & ~(huge - 1);
        if (posix_memalign(&mem, huge, rounded) == 0)
            madvise(mem, rounded, MADV_HUGEPAGE);
        else
            mem = NULL;
    }
#endif
    if (!mem)
        mem = malloc(size ? (size_t)size : 1);
    if (!mem)
        return PyErr_NoMemory();
    Pages *p = PyObject_New(Pages, &PagesType);
    if (!p) {
        free(mem);
        return NULL;
    }
    p->mem = mem;
    p->size = size;
    return (PyObject *)p;
}

static PyMethodDef methods[] = {
    {"rank_order", ctx_rank_order, METH_VARARGS, "The rank lists of a codebook (see ctxcoder.py)."},
    {"pages", ctx_pages, METH_VARARGS, "A writable buffer for a decoded image (huge pages from 1 MiB)."},
    {"parse_tables", ctx_parse_tables, METH_VARARGS, "The tables of coder-2 INDX data (see ctxcoder.py)."},
    {"symbols", ctx_symbols, METH_VARARGS, "One band's symbols and their counts (see ctxcoder.py)."},
    {"encode", ctx_encode, METH_VARARGS, "rANS-code the mode and literal symbols (see ctxcoder.py)."},
    {"decode", ctx_decode, METH_VARARGS, "Decode an index map into a writable buffer (see ctxcoder.py)."},
    {"decode_image", ctx_decode_image, METH_VARARGS,
     "Decode every band of an image, to indices or pixels, on several threads (see ctxcoder.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "vqcodec._ctxcoder",
    "The per-pixel loops of index coder 2; see vqcodec/ctxcoder.py.", -1, methods,
};

PyMODINIT_FUNC PyInit__ctxcoder(void)
{
    if (PyType_Ready(&PagesType) < 0)
        return NULL;
    return PyModule_Create(&module);
}
