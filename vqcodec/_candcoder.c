/* vqcodec._candcoder: the rANS loops of index coder 3 (spec/FORMAT.md §5.5).
 *
 * The model -- symbols, the context map, the tables and their parsing and
 * checks -- is Python (vqcodec/coders/cand.py), which also holds the same
 * two loops in Python (rans.encode_stream, cand.decode_reference); the
 * tests check them against each other.  Here:
 *
 *   encode(freq, start) -> bytes: one band's stream from the frequencies and
 *       starts of its rANS symbols in decoding order (uint16 each);
 *   decode_image(...): every band of an image on several threads, writing
 *       indices or pixels, with every check of §5.5.5.
 *
 * rANS with a 32-bit state, byte-wise renormalisation, L = 2^23, 12-bit
 * frequencies, as coder 2 (F. Giesen's ryg_rans layout).  The functions
 * release the GIL while they loop.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>
#include "_rans.h"
#include "_workers.h"
#include <stdint.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
#endif

#define SYMBOLS 7
#define ESCAPE 6
#define RAW_CONTEXTS (1024 * SYMBOLS)
#define ESCAPE_CONTEXTS 9
#define TOKENS 16
#define MAX_TABLES 255

/* encode(freq, start) -> bytes: freq/start uint16 per symbol, decoding order.
 * Every frequency must be 1 .. 4096 and start + freq <= 4096. */
static PyObject *cand_encode(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer fb, sb;
    if (!PyArg_ParseTuple(args, "y*y*", &fb, &sb))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = fb.len / 2;
    if (fb.len % 2 || sb.len != fb.len) {
        PyErr_SetString(PyExc_ValueError, "candcoder.encode: array sizes do not match");
        goto done;
    }
    /* a symbol renormalises at most 2 bytes out; the state takes 4 */
    Py_ssize_t cap = 2 * n + 8;
    uint8_t *buf = PyMem_Malloc((size_t)cap);
    if (!buf) {
        PyErr_NoMemory();
        goto done;
    }
    const uint16_t *freq = fb.buf, *start = sb.buf;
    uint8_t *end = buf + cap, *p = end;
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    uint32_t x = RANS_L;
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        uint32_t f = freq[i], s = start[i];
        if (f == 0 || f > SCALE || s + f > SCALE) {
            bad = 1;
            break;
        }
        x = rans_put(x, f, s, &p);
    }
    if (!bad)
        rans_put_state(x, &p);
    Py_END_ALLOW_THREADS
    if (bad)
        PyErr_SetString(PyExc_ValueError, "candcoder.encode: a symbol outside its table");
    else
        result = PyBytes_FromStringAndSize((const char *)p, end - p);
    PyMem_Free(buf);
done:
    PyBuffer_Release(&fb);
    PyBuffer_Release(&sb);
    return result;
}

/* ------------------------------------------------------------------------
 * Decoding */

typedef struct {
    uint8_t order[256 * 256];    /* order[a * 256 + r] */
    uint8_t position[256 * 256]; /* position[a * 256 + b]: where b is in order[a] */
    uint8_t map[RAW_CONTEXTS];
    uint16_t sfreq[MAX_TABLES * 8], sstart[MAX_TABLES * 8]; /* 7 symbols, padded to 8 */
    uint16_t efreq[ESCAPE_CONTEXTS * TOKENS], estart[ESCAPE_CONTEXTS * TOKENS];
    uint8_t etoken[ESCAPE_CONTEXTS * SCALE]; /* slot -> token */
    uint8_t has_escape[ESCAPE_CONTEXTS];
    unsigned n, channels, tables;
    Py_ssize_t width, band_rows, count, rows_total;
    const uint8_t *book; /* n * channels */
    int pixels;
    uint8_t *out;
    const uint8_t **src;  /* per band: padded copy of the bytes after the state */
    const uint8_t **end;  /* per band: end of those bytes */
    uint32_t *state;      /* per band: initial state */
    const char **error;   /* per band: NULL, or what went wrong */
    uint32_t next_band;
    int nomem[16];
} Job;

#define FAIL(msg)     \
    do {              \
        error = (msg); \
        goto finish;  \
    } while (0)

#define RENORM()                                    \
    do {                                            \
        while (x < RANS_L) {                        \
            if (src >= end)                         \
                FAIL("stream ends early");          \
            x = (x << 8) | *src++;                  \
        }                                           \
    } while (0)

/* One band: 0, or the error is in J->error[b]. */
static void decode_band(Job *J, Py_ssize_t b, uint8_t *ring)
{
    const Py_ssize_t w = J->width, stride = w + 3;
    const Py_ssize_t top = b * J->band_rows;
    Py_ssize_t rows = J->rows_total - top;
    if (rows > J->band_rows)
        rows = J->band_rows;
    const char *error = NULL;
    const uint8_t *src = J->src[b], *end = J->end[b];
    uint32_t x = J->state[b];
    const unsigned n = J->n;
    memset(ring, 0, 3 * (size_t)stride);
    for (Py_ssize_t y = 0; y < rows; y++) {
        /* rows of the ring: 2 zero columns on the left, 1 on the right */
        uint8_t *cur = ring + (y % 3) * stride + 2;
        const uint8_t *up = ring + ((y + 2) % 3) * stride + 2;
        const uint8_t *up2 = ring + ((y + 1) % 3) * stride + 2;
        if (y == 0) /* rows above the band are 0 */
            memset(ring, 0, 3 * (size_t)stride);
        else if (y == 1)
            memset((uint8_t *)up2 - 2, 0, (size_t)stride);
        cur[-1] = cur[-2] = 0;
        unsigned sl = ESCAPE;
        for (Py_ssize_t i = 0; i < w; i++) {
            unsigned W = cur[i - 1], WW = cur[i - 2], N = up[i], NE = up[i + 1], NW = up[i - 1], NN = up2[i];
            unsigned P = (W == N) | (N == NE) << 1 | (W == NW) << 2 | (NW == N) << 3 | (W == WW) << 4
                         | (N == NN) << 5 | (W == NE) << 6 | (NW == NE) << 7 | (WW == NW) << 8
                         | (NN == NE) << 9;
            unsigned t = J->map[P * SYMBOLS + sl];
            const uint16_t *st = J->sstart + t * 8;
            uint32_t slot = x & (SCALE - 1);
            unsigned s = (slot >= st[1]) + (slot >= st[2]) + (slot >= st[3]) + (slot >= st[4])
                         + (slot >= st[5]) + (slot >= st[6]);
            x = J->sfreq[t * 8 + s] * (x >> SCALE_BITS) + slot - st[s];
            RENORM();
            unsigned cand[6], d = 1;
            cand[0] = W;
            const unsigned rest[5] = {N, NE, NW, WW, NN};
            for (int j = 0; j < 5; j++) {
                unsigned v = rest[j], seen = 0;
                for (unsigned m = 0; m < d; m++)
                    seen |= cand[m] == v;
                if (!seen)
                    cand[d++] = v;
            }
            unsigned X;
            if (s < d) {
                X = cand[s];
            } else if (s < ESCAPE) {
                FAIL("a symbol names no candidate");
            } else {
                unsigned p = J->position[W * 256 + N];
                unsigned q = p ? 32 - (unsigned)__builtin_clz(p) : 0;
                if (!J->has_escape[q])
                    FAIL("an escape without a table");
                slot = x & (SCALE - 1);
                unsigned tok = J->etoken[q * SCALE + slot];
                x = J->efreq[q * TOKENS + tok] * (x >> SCALE_BITS) + slot - J->estart[q * TOKENS + tok];
                RENORM();
                unsigned v = tok;
                if (tok >= 4) {
                    unsigned bits = ((tok - 4) >> 1) + 1, shift = SCALE_BITS - bits;
                    slot = x & (SCALE - 1);
                    unsigned u = slot >> shift;
                    x = ((x >> SCALE_BITS) << shift) + (slot & ((1u << shift) - 1));
                    RENORM();
                    v = ((2u | ((tok - 4) & 1)) << bits) | u;
                }
                if (v + d >= n)
                    FAIL("an escape past the entries that are no candidate");
                /* the position r in order[W] with v non-candidates before it */
                unsigned pc[6];
                for (unsigned m = 0; m < d; m++)
                    pc[m] = J->position[W * 256 + cand[m]];
                unsigned r = v;
                for (;;) {
                    unsigned next = v;
                    for (unsigned m = 0; m < d; m++)
                        next += pc[m] <= r;
                    if (next == r)
                        break;
                    r = next;
                }
                X = J->order[W * 256 + r];
            }
            cur[i] = (uint8_t)X;
            sl = s;
        }
        /* the row to the output */
        Py_ssize_t yy = top + y;
        if (!J->pixels) {
            memcpy(J->out + yy * w, cur, (size_t)w);
        } else {
            unsigned c = J->channels;
            uint8_t *o = J->out + yy * w * c;
            for (Py_ssize_t i = 0; i < w; i++)
                memcpy(o + i * c, J->book + cur[i] * c, c);
        }
    }
    if (src != end)
        FAIL("bytes left after the last pixel");
    if (x != RANS_L)
        FAIL("final state is wrong");
finish:
    J->error[b] = error;
}


/* ------------------------------------------------------------------------
 * The fast decoder.  decode_band above follows §5.5.5 step by step with every
 * check where it can fail; it names the error.  Here the checks that can fail
 * with tables read_model accepted -- a symbol that names no candidate, an
 * escape without a table or past the entries, running out of bytes -- are
 * folded into one word per row (the stream is read from a copy with zero
 * padding that a row cannot overrun), and a band that fails them, or does not
 * end exactly, is decoded again by decode_band.  The renormalisation reads
 * the 0, 1 or 2 bytes that bring x back to [2^23, 2^31) at once.  What the
 * row above gives every pixel (N, NE, NW, NN and their equalities) is laid
 * out for the whole row before it is decoded.  The candidates are found
 * with byte-wise compares in one 64-bit word. */

#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && !defined(__clang__)
#define DECODER_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define DECODER_CLONES
#endif

/* x in [2^11, 2^31): the bytes that bring it to [2^23, 2^31), at most 2 */
#define RENORM_FAST(x, src)                                                             \
    do {                                                                                \
        unsigned sh_ = ((unsigned)__builtin_clz((x) | 0x800u) - 1u) & ~7u;              \
        uint32_t b_ = ((uint32_t)(src)[0] << 8) | (src)[1];                             \
        (x) = ((x) << sh_) | (b_ >> (16 - sh_));                                        \
        (src) += sh_ >> 3;                                                              \
    } while (0)

#define LOW7 0x7f7f7f7f7f7f7f7fULL
#define HIGH 0x8080808080808080ULL
/* 0x80 in each byte of t that is zero, 0 elsewhere */
#define ZERO_BYTES(t) (~((((t) & LOW7) + LOW7) | (t) | LOW7))

/* The candidates of the neighbours packed in v (W, N, NE, NW, WW, NN in bytes
 * 0-5): 0x80 in byte j when byte j differs from every earlier one. */
static inline uint64_t first_bytes(uint64_t v)
{
    uint64_t dup = 0;
    for (int k = 1; k < 6; k++) {
        uint64_t t = v ^ (v << (8 * k));
        dup |= ZERO_BYTES(t) & (0x0000808080808080ULL << (8 * k));
    }
    return ~dup & 0x0000808080808080ULL;
}

/* The value of the candidate of slot s (the s-th first byte), or flags an
 * error (returns 0) when there are fewer candidates. */
static inline unsigned slot_value(uint64_t v, uint64_t first, unsigned s, uint32_t *flags)
{
    for (unsigned k = 0; k < s; k++)
        first &= first - 1;
    *flags |= first == 0;
    return first ? (unsigned)(v >> (__builtin_ctzll(first) - 7)) & 0xff : 0;
}

typedef struct {
    uint32_t row;  /* N | NE << 8 | NW << 16 | NN << 24 */
    uint32_t bits; /* the pattern's bits that depend on the row above only */
} Above;

DECODER_CLONES
static int fast_band(Job *J, Py_ssize_t b, uint8_t *ring, Above *above, const uint8_t *src, const uint8_t *end)
{
    const Py_ssize_t w = J->width, stride = w + 3;
    const Py_ssize_t top = b * J->band_rows;
    Py_ssize_t rows = J->rows_total - top;
    if (rows > J->band_rows)
        rows = J->band_rows;
    uint32_t x = J->state[b], flags = 0;
    const unsigned n = J->n;
    if (x < RANS_L || x >= (1u << 31))
        return 1; /* the renormalisation rule needs x in range: the checked loop decides */
    memset(ring, 0, 3 * (size_t)stride);
    for (Py_ssize_t y = 0; y < rows; y++) {
        uint8_t *cur = ring + (y % 3) * stride + 2;
        const uint8_t *up = ring + ((y + 2) % 3) * stride + 2;
        const uint8_t *up2 = ring + ((y + 1) % 3) * stride + 2;
        for (Py_ssize_t i = 0; i < w; i++) {
            uint32_t N = up[i], NE = up[i + 1], NW = up[i - 1], NN = up2[i];
            above[i].row = N | NE << 8 | NW << 16 | NN << 24;
            above[i].bits = (N == NE) << 1 | (NW == N) << 3 | (N == NN) << 5 | (NW == NE) << 7 | (NN == NE) << 9;
        }
        unsigned sl = ESCAPE, W = 0, WW = 0;
        for (Py_ssize_t i = 0; i < w; i++) {
            uint32_t row = above[i].row;
            unsigned N = row & 0xff, NE = (row >> 8) & 0xff, NW = (row >> 16) & 0xff;
            unsigned P = above[i].bits | (W == N) | (W == NW) << 2 | (W == WW) << 4 | (W == NE) << 6
                         | (WW == NW) << 8;
            unsigned t = J->map[P * SYMBOLS + sl];
            const uint16_t *st = J->sstart + t * 8;
            uint32_t slot = x & (SCALE - 1);
            unsigned s = (slot >= st[1]) + (slot >= st[2]) + (slot >= st[3]) + (slot >= st[4])
                         + (slot >= st[5]) + (slot >= st[6]);
            x = J->sfreq[t * 8 + s] * (x >> SCALE_BITS) + slot - st[s];
            RENORM_FAST(x, src);
            unsigned X = W;
            if (s) {
                uint64_t v = W | (uint64_t)N << 8 | (uint64_t)NE << 16 | (uint64_t)NW << 24
                             | (uint64_t)WW << 32 | (uint64_t)(row >> 24) << 40;
                uint64_t first = first_bytes(v);
                if (s < ESCAPE) {
                    X = slot_value(v, first, s, &flags);
                } else {
                    unsigned p = J->position[W * 256 + N];
                    unsigned q = p ? 32 - (unsigned)__builtin_clz(p) : 0;
                    slot = x & (SCALE - 1);
                    unsigned tok = J->etoken[q * SCALE + slot];
                    uint32_t f = J->efreq[q * TOKENS + tok];
                    flags |= f == 0;
                    x = f * (x >> SCALE_BITS) + slot - J->estart[q * TOKENS + tok];
                    RENORM_FAST(x, src);
                    unsigned v2 = tok;
                    if (tok >= 4) {
                        unsigned bits = ((tok - 4) >> 1) + 1, shift = SCALE_BITS - bits;
                        slot = x & (SCALE - 1);
                        x = ((x >> SCALE_BITS) << shift) + (slot & ((1u << shift) - 1));
                        RENORM_FAST(x, src);
                        v2 = ((2u | ((tok - 4) & 1)) << bits) | (slot >> shift);
                    }
                    unsigned d = (unsigned)__builtin_popcountll(first);
                    flags |= v2 + d >= n;
                    const uint8_t *pos = J->position + W * 256;
                    unsigned pc[6], m = 0;
                    for (uint64_t f2 = first; f2; f2 &= f2 - 1)
                        pc[m++] = pos[(v >> (__builtin_ctzll(f2) - 7)) & 0xff];
                    unsigned r = v2;
                    for (;;) {
                        unsigned next = v2;
                        for (unsigned j = 0; j < d; j++)
                            next += pc[j] <= r;
                        if (next == r || next >= n)
                            break;
                        r = next;
                    }
                    X = J->order[W * 256 + (r & 0xff)];
                }
            }
            cur[i] = (uint8_t)X;
            WW = W;
            W = X;
            sl = s;
        }
        if (flags || src > end)
            return 1;
        Py_ssize_t yy = top + y;
        if (!J->pixels) {
            memcpy(J->out + yy * w, cur, (size_t)w);
        } else {
            unsigned c = J->channels;
            uint8_t *o = J->out + yy * w * c;
            for (Py_ssize_t i = 0; i < w; i++)
                memcpy(o + i * c, J->book + cur[i] * c, c);
        }
    }
    return x != RANS_L || src != end;
}

#if defined(__GNUC__) || defined(__clang__)
#define CLAIM(counter) __atomic_fetch_add(&(counter), 1, __ATOMIC_RELAXED)
#define MAX_THREADS 16
#else
#define CLAIM(counter) ((counter)++)
#define MAX_THREADS 1
#endif

static void decode_bands(Job *J, int who)
{
    uint8_t *ring = PyMem_RawMalloc(3 * (size_t)(J->width + 3));
    Above *above = PyMem_RawMalloc((size_t)J->width * sizeof *above);
    uint8_t *copy = NULL;
    size_t copy_size = 0;
    if (!ring || !above) {
        J->nomem[who] = 1;
        goto done;
    }
    for (;;) {
        Py_ssize_t b = (Py_ssize_t)CLAIM(J->next_band);
        if (b >= J->count)
            break;
        if (J->error[b]) /* refused before decoding (a short stream) */
            continue;
        /* a copy of the band's bytes with room for a row to read past them: a
         * pixel reads at most 6 bytes */
        size_t len = (size_t)(J->end[b] - J->src[b]), need = len + 6 * (size_t)J->width + 16;
        if (need > copy_size) {
            PyMem_RawFree(copy);
            copy = PyMem_RawMalloc(need);
            copy_size = copy ? need : 0;
            if (!copy) {
                J->nomem[who] = 1;
                break;
            }
        }
        memcpy(copy, J->src[b], len);
        memset(copy + len, 0, need - len);
        if (fast_band(J, b, ring, above, copy, copy + len))
            decode_band(J, b, ring);
    }
done:
    PyMem_RawFree(ring);
    PyMem_RawFree(above);
    PyMem_RawFree(copy);
}

static void decode_bands_of(void *job, int who) { decode_bands(job, who); }

/* decode_image(streams, out, width, band_rows, book, channels, pixels, order, map,
 *              symbol_freq, symbol_start, escape_freq, escape_start, threads)
 *   -> None, or (band, reason) for the first band that is corrupt.
 *
 * streams: each band's bytes (state, then stream); out: writable, the image's
 * indices (pixels false) or its pixels of `channels` bytes.  order: n * n
 * (rank_order); map: 7168 bytes; symbol_freq/start: uint16 (tables, 7);
 * escape_freq/start: uint16 (9, 16).  The tables must be those read_model
 * accepted (§5.5.4). */
static PyObject *cand_decode_image(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *seq;
    Py_buffer out, bk, ord, mp, sf, ss, ef, es;
    Py_ssize_t width, band_rows;
    int channels, pixels, threads;
    if (!PyArg_ParseTuple(args, "Ow*nny*ipy*y*y*y*y*y*i", &seq, &out, &width, &band_rows, &bk, &channels,
                          &pixels, &ord, &mp, &sf, &ss, &ef, &es, &threads))
        return NULL;
    PyObject *fast = NULL, *result = NULL;
    Py_buffer *streams = NULL;
    Job *J = NULL;
    Py_ssize_t count = 0, got = 0;
    Py_ssize_t n = channels >= 1 ? bk.len / channels : 0;
    Py_ssize_t item = pixels ? channels : 1;
    Py_ssize_t tables = sf.len / (2 * SYMBOLS);
    fast = PySequence_Fast(seq, "decode_image: streams must be a sequence");
    if (!fast)
        goto release;
    count = PySequence_Fast_GET_SIZE(fast);
    if (width < 1 || band_rows < 1 || channels < 1 || bk.len % channels || n < 1 || n > 256
        || ord.len != n * n || mp.len != RAW_CONTEXTS || tables < 1 || tables > MAX_TABLES
        || sf.len != tables * 2 * SYMBOLS || ss.len != sf.len || ef.len != ESCAPE_CONTEXTS * TOKENS * 2
        || es.len != ef.len || count < 1 || out.len % (width * item)
        || out.len / (width * item) > count * band_rows
        || out.len / (width * item) <= (count - 1) * band_rows) {
        PyErr_SetString(PyExc_ValueError, "candcoder.decode_image: array sizes do not match");
        goto release;
    }
    streams = PyMem_Calloc((size_t)count, sizeof *streams);
    J = PyMem_Calloc(1, sizeof *J);
    if (J) {
        J->src = PyMem_Calloc((size_t)count, sizeof *J->src);
        J->end = PyMem_Calloc((size_t)count, sizeof *J->end);
        J->state = PyMem_Calloc((size_t)count, sizeof *J->state);
        J->error = PyMem_Calloc((size_t)count, sizeof *J->error);
    }
    if (!streams || !J || !J->src || !J->end || !J->state || !J->error) {
        PyErr_NoMemory();
        goto release;
    }
    for (; got < count; got++)
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(fast, got), &streams[got], PyBUF_SIMPLE) < 0)
            goto release;
    J->n = (unsigned)n;
    J->channels = (unsigned)channels;
    J->tables = (unsigned)tables;
    J->width = width;
    J->band_rows = band_rows;
    J->count = count;
    J->rows_total = out.len / (width * item);
    J->book = bk.buf;
    J->pixels = pixels;
    J->out = out.buf;
    int nomem = 0;
    Py_BEGIN_ALLOW_THREADS
    const uint8_t *o = ord.buf;
    for (Py_ssize_t a = 0; a < n; a++)
        for (Py_ssize_t r = 0; r < n; r++) {
            J->order[a * 256 + r] = o[a * n + r];
            J->position[a * 256 + o[a * n + r]] = (uint8_t)r;
        }
    memcpy(J->map, mp.buf, RAW_CONTEXTS);
    const uint16_t *sfreq = sf.buf, *sstart = ss.buf, *efreq = ef.buf, *estart = es.buf;
    for (Py_ssize_t t = 0; t < tables; t++) {
        for (int s = 0; s < SYMBOLS; s++) {
            J->sfreq[t * 8 + s] = sfreq[t * SYMBOLS + s];
            J->sstart[t * 8 + s] = sstart[t * SYMBOLS + s];
        }
        J->sfreq[t * 8 + 7] = 0;
        J->sstart[t * 8 + 7] = SCALE;
    }
    for (int q = 0; q < ESCAPE_CONTEXTS; q++) {
        unsigned covered = 0;
        for (int t = 0; t < TOKENS; t++) {
            J->efreq[q * TOKENS + t] = efreq[q * TOKENS + t];
            J->estart[q * TOKENS + t] = estart[q * TOKENS + t];
            for (unsigned k = 0; k < efreq[q * TOKENS + t] && estart[q * TOKENS + t] + k < SCALE; k++, covered++)
                J->etoken[q * SCALE + estart[q * TOKENS + t] + k] = (uint8_t)t;
        }
        J->has_escape[q] = covered == SCALE;
    }
    for (Py_ssize_t b = 0; b < count && !nomem; b++) {
        Py_ssize_t len = streams[b].len;
        if (len < 4) {
            J->error[b] = "stream shorter than its state";
            continue;
        }
        const uint8_t *s4 = streams[b].buf;
        J->state[b] = (uint32_t)s4[0] | ((uint32_t)s4[1] << 8) | ((uint32_t)s4[2] << 16)
                      | ((uint32_t)s4[3] << 24);
        J->src[b] = s4 + 4;
        J->end[b] = s4 + len;
    }
    Py_ssize_t want = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
    if (want > count)
        want = count;
    int ran = run_workers(decode_bands_of, J, (int)want);
    for (int t = 0; t < ran; t++)
        nomem |= J->nomem[t];
    Py_END_ALLOW_THREADS
    if (nomem) {
        PyErr_NoMemory();
        goto release;
    }
    result = Py_None;
    Py_INCREF(result);
    for (Py_ssize_t b = 0; b < count; b++)
        if (J->error[b]) {
            Py_DECREF(result);
            result = Py_BuildValue("(ns)", b, J->error[b]);
            break;
        }
release:
    for (Py_ssize_t b = 0; b < got; b++)
        PyBuffer_Release(&streams[b]);
    PyMem_Free(streams);
    if (J) {
        PyMem_Free(J->src);
        PyMem_Free(J->end);
        PyMem_Free(J->state);
        PyMem_Free(J->error);
        PyMem_Free(J);
    }
    Py_XDECREF(fast);
    PyBuffer_Release(&out);
    PyBuffer_Release(&bk);
    PyBuffer_Release(&ord);
    PyBuffer_Release(&mp);
    PyBuffer_Release(&sf);
    PyBuffer_Release(&ss);
    PyBuffer_Release(&ef);
    PyBuffer_Release(&es);
    return result;
}

static PyMethodDef methods[] = {
    {"encode", cand_encode, METH_VARARGS, "encode(freq, start) -> bytes: one band's rANS stream"},
    {"decode_image", cand_decode_image, METH_VARARGS,
     "decode_image(streams, out, width, band_rows, book, channels, pixels, order, map, symbol_freq, "
     "symbol_start, escape_freq, escape_start, threads) -> None or (band, reason)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "vqcodec._candcoder",
    "The rANS loops of index coder 3; see vqcodec/coders/cand.py.", -1, methods,
};

PyMODINIT_FUNC PyInit__candcoder(void) { return PyModule_Create(&module); }
