/* vqcodec._candcoder: the rANS loops of index coder 3 (spec/FORMAT.md §5.5).
 *
 * The model -- symbols, the context map, the tables and their parsing and
 * checks -- is Python (vqcodec/coders/cand.py), which also holds the same
 * two loops in Python (rans.encode_stream, cand.decode_reference); the
 * tests check them against each other.  Here:
 *
 *   symbols(...): one band's symbols and their escape values and contexts;
 *   encode_band(...): one band's stream from its symbols and the tables;
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
#include "_ranks.h"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
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

/* symbols(grid, width, n, order) -> (raw, symbol, value, context)
 *
 * One band's symbols (§5.5.1 - §5.5.3), as cand.Symbols defines them: grid is
 * the band's rows of width indices (< n; the rows above count as outside),
 * order the n * n rank lists.  raw: uint16 per pixel (pattern + 1024 x the
 * left symbol); symbol: uint8 (0-6); value and context: uint8, for an escape
 * its rank among the entries that are no candidate and the bit length of N's
 * position in order[W], 0 elsewhere. */
static PyObject *cand_symbols(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer gb, ob;
    Py_ssize_t width, n;
    if (!PyArg_ParseTuple(args, "y*nny*", &gb, &width, &n, &ob))
        return NULL;
    PyObject *result = NULL, *raw = NULL, *sym = NULL, *val = NULL, *ctx = NULL;
    if (width < 1 || gb.len % width || n < 1 || n > 256 || ob.len != n * n) {
        PyErr_SetString(PyExc_ValueError, "candcoder.symbols: array sizes do not match");
        goto done;
    }
    Py_ssize_t count = gb.len, height = gb.len / width;
    raw = PyBytes_FromStringAndSize(NULL, 2 * count);
    sym = PyBytes_FromStringAndSize(NULL, count);
    val = PyBytes_FromStringAndSize(NULL, count);
    ctx = PyBytes_FromStringAndSize(NULL, count);
    uint8_t *position = PyMem_Malloc(256 * 256);
    if (!raw || !sym || !val || !ctx || !position) {
        PyMem_Free(position);
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        goto done;
    }
    const uint8_t *grid = gb.buf, *order = ob.buf;
    uint16_t *r16 = (uint16_t *)PyBytes_AS_STRING(raw);
    uint8_t *so = (uint8_t *)PyBytes_AS_STRING(sym), *vo = (uint8_t *)PyBytes_AS_STRING(val);
    uint8_t *qo = (uint8_t *)PyBytes_AS_STRING(ctx);
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t a = 0; a < n; a++)
        for (Py_ssize_t r = 0; r < n; r++)
            position[a * 256 + order[a * n + r]] = (uint8_t)r;
    for (Py_ssize_t y = 0; y < height && !bad; y++) {
        const uint8_t *row = grid + y * width, *up = y >= 1 ? row - width : NULL, *up2 = y >= 2 ? row - 2 * width : NULL;
        unsigned sl = ESCAPE;
        for (Py_ssize_t i = 0; i < width; i++) {
            unsigned X = row[i];
            unsigned W = i >= 1 ? row[i - 1] : 0, WW = i >= 2 ? row[i - 2] : 0;
            unsigned N = up ? up[i] : 0, NE = up && i + 1 < width ? up[i + 1] : 0;
            unsigned NW = up && i >= 1 ? up[i - 1] : 0, NN = up2 ? up2[i] : 0;
            if (X >= n || W >= n || N >= n) {
                bad = 1;
                break;
            }
            unsigned P = (W == N) | (W == NE) << 1 | (W == NW) << 2 | (W == WW) << 3 | (WW == NW) << 4
                         | (N == NE) << 5 | (NW == N) << 6 | (N == NN) << 7 | (NW == NE) << 8 | (NN == NE) << 9;
            const unsigned nb[6] = {W, N, NE, NW, WW, NN};
            unsigned cand[6], d = 0, s = ESCAPE;
            for (int j = 0; j < 6; j++) {
                unsigned seen = 0;
                for (unsigned m = 0; m < d; m++)
                    seen |= cand[m] == nb[j];
                if (!seen) {
                    if (nb[j] == X)
                        s = d;
                    cand[d++] = nb[j];
                }
            }
            Py_ssize_t p = y * width + i;
            r16[p] = (uint16_t)(P + 1024 * sl);
            so[p] = (uint8_t)s;
            vo[p] = qo[p] = 0;
            if (s == ESCAPE) {
                unsigned rank = position[W * 256 + X], skipped = 0;
                for (unsigned m = 0; m < d; m++)
                    skipped += position[W * 256 + cand[m]] < rank;
                unsigned pn = position[W * 256 + N];
                vo[p] = (uint8_t)(rank - skipped);
                qo[p] = (uint8_t)(pn ? 32 - __builtin_clz(pn) : 0);
            }
            sl = s;
        }
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(position);
    if (bad)
        PyErr_SetString(PyExc_ValueError, "candcoder.symbols: an index >= n");
    else
        result = PyTuple_Pack(4, raw, sym, val, ctx);
done:
    Py_XDECREF(raw);
    Py_XDECREF(sym);
    Py_XDECREF(val);
    Py_XDECREF(ctx);
    PyBuffer_Release(&gb);
    PyBuffer_Release(&ob);
    return result;
}

/* encode_band(raw, symbol, value, context, map, symbol_freq, symbol_start, escape_freq,
 *             escape_start) -> bytes
 *
 * One band's stream (its initial state, then its bytes) from symbols() and
 * the tables (uint16: tables x 7 and 9 x 16), as rans.encode_stream does
 * with cand.coded's frequencies. */
static PyObject *cand_encode_band(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer rb, sb, vb, qb, mb, sfb, ssb, efb, esb;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*y*", &rb, &sb, &vb, &qb, &mb, &sfb, &ssb, &efb, &esb))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = sb.len, tables = sfb.len / (2 * SYMBOLS);
    uint8_t *buf = NULL;
    if (rb.len != 2 * n || vb.len != n || qb.len != n || mb.len != RAW_CONTEXTS || tables < 1
        || sfb.len != tables * 2 * SYMBOLS || ssb.len != sfb.len || efb.len != 2 * ESCAPE_CONTEXTS * TOKENS
        || esb.len != efb.len) {
        PyErr_SetString(PyExc_ValueError, "candcoder.encode_band: array sizes do not match");
        goto done;
    }
    /* a pixel codes at most 3 symbols, each renormalising at most 2 bytes out */
    Py_ssize_t cap = 6 * n + 8;
    buf = PyMem_Malloc((size_t)cap);
    if (!buf) {
        PyErr_NoMemory();
        goto done;
    }
    const uint16_t *raw = rb.buf, *sfreq = sfb.buf, *sstart = ssb.buf, *efreq = efb.buf, *estart = esb.buf;
    const uint8_t *sym = sb.buf, *val = vb.buf, *q = qb.buf, *map = mb.buf;
    uint8_t *end = buf + cap, *p = end;
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    uint32_t x = RANS_L;
    for (Py_ssize_t i = n - 1; i >= 0 && !bad; i--) {
        unsigned s = sym[i], c = raw[i];
        if (s >= SYMBOLS || c >= RAW_CONTEXTS || map[c] >= tables || q[i] >= ESCAPE_CONTEXTS) {
            bad = 1;
            break;
        }
        if (s == ESCAPE) { /* decoded after the symbol: coded before it, remainder first */
            unsigned v = val[i], tok, bits = 0;
            if (v < 4) {
                tok = v;
            } else {
                unsigned e = 31 - (unsigned)__builtin_clz(v);
                bits = e - 1;
                tok = 4 + 2 * (e - 2) + ((v >> bits) & 1);
            }
            if (bits) {
                unsigned shift = SCALE_BITS - bits;
                x = rans_put(x, 1u << shift, (v & ((1u << bits) - 1)) << shift, &p);
            }
            uint32_t f = efreq[q[i] * TOKENS + tok];
            if (!f) {
                bad = 1;
                break;
            }
            x = rans_put(x, f, estart[q[i] * TOKENS + tok], &p);
        }
        unsigned t = map[c];
        uint32_t f = sfreq[t * SYMBOLS + s];
        if (!f) {
            bad = 1;
            break;
        }
        x = rans_put(x, f, sstart[t * SYMBOLS + s], &p);
    }
    if (!bad)
        rans_put_state(x, &p);
    Py_END_ALLOW_THREADS
    if (bad)
        PyErr_SetString(PyExc_ValueError, "candcoder.encode_band: a symbol outside its table");
    else
        result = PyBytes_FromStringAndSize((const char *)p, end - p);
done:
    PyMem_Free(buf);
    PyBuffer_Release(&rb);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&vb);
    PyBuffer_Release(&qb);
    PyBuffer_Release(&mb);
    PyBuffer_Release(&sfb);
    PyBuffer_Release(&ssb);
    PyBuffer_Release(&efb);
    PyBuffer_Release(&esb);
    return result;
}

/* ------------------------------------------------------------------------
 * parse_tables(raw, tables) -> (symbol_freq, escape_freq, used) or None
 *
 * The symbol and escape tables of coder-3 INDX data (§5.5.4: what follows the
 * context map), as cand.read_model reads them: uint16 frequencies (tables x 7
 * and 9 x 16, an absent escape table all 0) and the bytes they took.  None
 * when any rule is broken: read_model then names it.  (In Python the tables
 * of a k = 256 photo took about 0.3 ms, a few per cent of its decode.) */

/* A table of `symbols` at *pos, its mask `mask_bytes` long, into freq: 0 when
 * a rule is broken.  A mask of 0 leaves freq 0 (the caller decides). */
static int read_table(const uint8_t *d, Py_ssize_t len, Py_ssize_t *pos, int mask_bytes, int symbols,
                      uint16_t *freq)
{
    if (*pos + mask_bytes > len)
        return 0;
    unsigned mask = d[*pos] | (mask_bytes > 1 ? (unsigned)d[*pos + 1] << 8 : 0);
    *pos += mask_bytes;
    if (mask >> symbols)
        return 0;
    unsigned total = 0;
    int last = -1;
    for (int t = 0; t < symbols; t++) {
        freq[t] = 0;
        if (!(mask >> t & 1))
            continue;
        if (last >= 0) { /* every set symbol but the last has its frequency here */
            unsigned value;
            if (!v14(d, len, pos, &value) || value == 0)
                return 0;
            freq[last] = (uint16_t)value;
            total += value;
        }
        last = t;
    }
    if (last >= 0) {
        if (total + 1 > SCALE)
            return 0;
        freq[last] = (uint16_t)(SCALE - total);
    }
    return 1;
}

static PyObject *cand_parse_tables(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer in;
    int tables;
    if (!PyArg_ParseTuple(args, "y*i", &in, &tables))
        return NULL;
    PyObject *result = NULL;
    uint16_t sf[MAX_TABLES * SYMBOLS], ef[ESCAPE_CONTEXTS * TOKENS];
    const uint8_t *d = in.buf;
    Py_ssize_t pos = 0;
    int ok = tables >= 1 && tables <= MAX_TABLES;
    for (int t = 0; ok && t < tables; t++) /* a symbol table's mask must not be 0 */
        ok = d && pos < in.len && d[pos] && read_table(d, in.len, &pos, 1, SYMBOLS, sf + t * SYMBOLS);
    for (int q = 0; ok && q < ESCAPE_CONTEXTS; q++)
        ok = read_table(d, in.len, &pos, 2, TOKENS, ef + q * TOKENS);
    if (ok)
        result = Py_BuildValue("y#y#n", (const char *)sf, (Py_ssize_t)(tables * SYMBOLS * 2), (const char *)ef,
                               (Py_ssize_t)sizeof ef, pos);
    else {
        result = Py_None;
        Py_INCREF(result);
    }
    PyBuffer_Release(&in);
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
    uint8_t nth[64 * 8];                     /* NTH (below), at an offset from J as the other tables */
    uint8_t has_escape[ESCAPE_CONTEXTS];
    unsigned n, channels, tables;
    Py_ssize_t width, band_rows, count, rows_total;
    const uint8_t *book; /* n * channels */
    uint8_t book4[256 * 4]; /* with 3 channels, the entries padded to 4 bytes */
    const uint8_t *rank_cb; /* the codebook as rank_row takes it (rank_book), rank_stride apart */
    unsigned rank_stride;
    uint8_t rank_pad[256 * 4];
    int pixels;
    uint8_t *out;
    const uint8_t **src;  /* per band: padded copy of the bytes after the state */
    const uint8_t **end;  /* per band: end of those bytes */
    uint32_t *state;      /* per band: initial state */
    const char **error;   /* per band: NULL, or what went wrong */
    uint32_t next_row, rows_done; /* the rank lists, made by the decoding threads */
    uint32_t next_band;
    int nomem[MAX_THREADS];
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

/* Row yy of the image, decoded into cur (its indices), to the output: the
 * indices, or the codebook's entries. */
static inline void write_row(const Job *J, Py_ssize_t yy, const uint8_t *cur)
{
    const Py_ssize_t w = J->width;
    if (!J->pixels) {
        memcpy(J->out + yy * w, cur, (size_t)w);
        return;
    }
    unsigned c = J->channels;
    uint8_t *o = J->out + yy * w * c;
    switch (c) { /* sizes the compiler knows: a move each, not a call of memcpy */
    case 1:
        for (Py_ssize_t i = 0; i < w; i++)
            o[i] = J->book[cur[i]];
        break;
    case 3: /* 4-byte stores from the padded entries (each writes the next pixel's
             * first byte before that pixel does); the row's last pixel exactly */
        for (Py_ssize_t i = 0; i + 1 < w; i++)
            memcpy(o + 3 * i, J->book4 + 4 * cur[i], 4);
        memcpy(o + 3 * (w - 1), J->book4 + 4 * cur[w - 1], 3);
        break;
    case 4:
        for (Py_ssize_t i = 0; i < w; i++)
            memcpy(o + 4 * i, J->book + 4 * cur[i], 4);
        break;
    default:
        for (Py_ssize_t i = 0; i < w; i++)
            memcpy(o + i * c, J->book + cur[i] * c, c);
    }
}

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
            unsigned P = (W == N) | (W == NE) << 1 | (W == NW) << 2 | (W == WW) << 3 | (WW == NW) << 4
                         | (N == NE) << 5 | (NW == N) << 6 | (N == NN) << 7 | (NW == NE) << 8
                         | (NN == NE) << 9;
            unsigned t = J->map[P + 1024 * sl];
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
        write_row(J, top + y, cur);
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
 * with byte-wise compares of the six neighbours, packed in one 64-bit word,
 * with W and with WW (SSE2: one compare each, giving bit masks).  The loop's
 * tables are read at their offsets from J, and WW from the ring, so that
 * the compiler keeps W, x and the other per-lane values in registers. */

/* x in [2^11, 2^31): the bytes that bring it to [2^23, 2^31), at most 2.  (After
 * an escape without a table x can be below 2^11; the row is then refused, and
 * the | 0x800 keeps the shift at 16.) */
#define RENORM_FAST(x, src)                                                             \
    do {                                                                                \
        unsigned sh_ = ((unsigned)__builtin_clz((x) | 0x800u) - 1u) & ~7u;              \
        uint32_t b_ = ((uint32_t)(src)[0] << 8) | (src)[1];                             \
        (x) = ((x) << sh_) | (b_ >> (16 - sh_));                                        \
        (src) += sh_ >> 3;                                                              \
    } while (0)

#define LOW7 0x7f7f7f7f7f7f7f7fULL
/* 0x80 in each byte of t that is zero, 0 elsewhere */
#define ZERO_BYTES(t) (~((((t) & LOW7) + LOW7) | (t) | LOW7))

/* NTH[mask * 8 + s]: the byte of the s-th set bit of a 6-bit mask, 7 when it
 * has fewer (filled when the module loads) */
static uint8_t NTH[64 * 8];
/* the raw bits after each token, and the least value it stands for (§5.5.3) */
static const uint8_t TOKEN_BITS[TOKENS] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6};
static const uint8_t TOKEN_BASE[TOKENS] = {0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192};

typedef struct { /* 16 bytes, in this order: start_row writes them with SSE2 */
    uint64_t row; /* N, NE, NW, NN in bytes 1, 2, 3 and 5 (W and WW go in bytes 0 and 4) */
    uint32_t bits; /* the pattern's bits that depend on the row above only */
    uint32_t dup;  /* bits 2, 3, 5: NE, NW, NN equal to an earlier one of N, NE, NW */
} Above;

/* One band being decoded (a lane: two advance together, pixel by pixel). */
typedef struct {
    uint32_t x;
    const uint8_t *src, *end; /* its padded copy; the end of its bytes */
    uint8_t *ring;            /* 3 rows of width + 3 indices: 2 zeros on the left, 1 on the right */
    Above *above;
    Py_ssize_t top, rows;
} Lane;

#define ONES_0_TO_5 0x0000010101010101ULL

/* The neighbours in v (W, N, NE, NW, WW, NN in bytes 0-5; bytes 6, 7 zero)
 * compared with value (W or WW): bit j set when byte j equals it.  (Bits 6,
 * 7 are set when value is 0; no caller looks at them.) */
static inline unsigned equal_mask(uint64_t v, unsigned value)
{
#if defined(__SSE2__) && defined(__x86_64__) /* _mm_cvtsi64_si128: x86-64 only */
    return (unsigned)_mm_movemask_epi8(
        _mm_cmpeq_epi8(_mm_cvtsi64_si128((long long)v), _mm_set1_epi8((char)value)));
#else
    uint64_t t = v ^ (value * ONES_0_TO_5);
    /* 0x80 in the bytes that are zero, then bit 8j + 7 to bit 56 + j: the six
     * products land on distinct bits, so nothing carries */
    const uint64_t gather = 1ULL << 49 | 1ULL << 42 | 1ULL << 35 | 1ULL << 28 | 1ULL << 21 | 1ULL << 14;
    return (unsigned)((ZERO_BYTES(t) * gather) >> 56) & 0x3f;
#endif
}

/* The bytes of v that differ from every earlier one (the candidates) as a
 * 6-bit mask, from the bytes equal to W (eq_w) and to WW (eq_ww) and those of
 * the row above that repeat an earlier one (row_dup). */
static inline unsigned candidates(unsigned row_dup, unsigned eq_w, unsigned eq_ww)
{
    unsigned dup = row_dup | (eq_w & 0x3e) | ((eq_ww & 0xf) != 0) << 4 | (eq_ww & 0x20);
    return ~dup & 0x3f;
}

#if defined(__SSE2__)
/* lane m of a, in every lane */
#define LANE_LO(a, m) _mm_shuffle_epi32(_mm_shufflelo_epi16((a), (m) * 0x55), 0)
#define LANE_HI(a, m) _mm_shuffle_epi32(_mm_shufflehi_epi16((a), (m) * 0x55), 0xaa)

/* The keys of the candidates of v (the bytes set in first) in order[W] (pos
 * = position + 256 W) as 16-bit lanes: each one's position less the
 * candidates at smaller positions.  The lanes of bytes that are no
 * candidate (and lanes 6, 7) hold 0x7fff, which counts below no position,
 * and 0x7fff less at most 6 stays above every value.  The six positions are
 * loaded whatever first says (every byte of v is an index, so in the row):
 * selecting them by mask costs no branch. */
static inline __m128i candidate_keys(const uint8_t *pos, uint64_t v, unsigned first)
{
    __m128i at = _mm_set_epi16(0, 0, pos[(v >> 40) & 0xff], pos[(v >> 32) & 0xff], pos[(v >> 24) & 0xff],
                               pos[(v >> 16) & 0xff], pos[(v >> 8) & 0xff], pos[v & 0xff]);
    const __m128i bit = _mm_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128);
    __m128i is = _mm_cmpeq_epi16(_mm_and_si128(_mm_set1_epi16((short)first), bit), bit); /* 0xffff in their lanes */
    __m128i pc = _mm_or_si128(_mm_and_si128(is, at), _mm_andnot_si128(is, _mm_set1_epi16(0x7fff)));
    /* - 1 for each lane m below: the lanes are distinct or 0x7fff */
    __m128i key = _mm_add_epi16(pc, _mm_cmpgt_epi16(pc, LANE_LO(pc, 0)));
    key = _mm_add_epi16(key, _mm_cmpgt_epi16(pc, LANE_LO(pc, 1)));
    key = _mm_add_epi16(key, _mm_cmpgt_epi16(pc, LANE_LO(pc, 2)));
    key = _mm_add_epi16(key, _mm_cmpgt_epi16(pc, LANE_LO(pc, 3)));
    key = _mm_add_epi16(key, _mm_cmpgt_epi16(pc, LANE_HI(pc, 0)));
    return _mm_add_epi16(key, _mm_cmpgt_epi16(pc, LANE_HI(pc, 1)));
}
#endif

/* The escape of a pixel (§5.5.3): its index, from state x and bytes src. */
static inline __attribute__((always_inline)) unsigned escape(const Job *J, uint32_t *px, const uint8_t **psrc,
                                                             unsigned W, uint64_t v, unsigned first,
                                                             uint32_t *flags)
{
    uint32_t x = *px;
    const uint8_t *src = *psrc;
    const uint8_t *pos = J->position + W * 256;
    unsigned p = pos[(v >> 8) & 0xff];
    unsigned q = 31 - (unsigned)__builtin_clz(2 * p + 1); /* the bit length of p, 0 for 0: no branch */
    uint32_t slot = x & (SCALE - 1);
    unsigned tok = J->etoken[q * SCALE + slot];
    uint32_t f = J->efreq[q * TOKENS + tok];
    *flags |= f == 0;
    x = f * (x >> SCALE_BITS) + slot - J->estart[q * TOKENS + tok];
    RENORM_FAST(x, src);
    /* the raw bits: one symbol of a uniform table (0 bits: x is unchanged) */
    unsigned shift = SCALE_BITS - TOKEN_BITS[tok];
    slot = x & (SCALE - 1);
    x = ((x >> SCALE_BITS) << shift) + (slot & ((1u << shift) - 1));
    RENORM_FAST(x, src);
    unsigned value = TOKEN_BASE[tok] + (slot >> shift);
    unsigned d = (unsigned)__builtin_popcount(first);
    *flags |= value + d >= J->n;
    /* the position r in order[W] with `value` non-candidates before it:
     * r = value + (candidates whose key is <= value), where a candidate's key
     * is the number of non-candidates before it in order[W] (its position
     * less the candidates at smaller positions).  The keys depend on W and
     * the candidates only, not on the value just decoded, so they are worked
     * out while the token is: what waits for the value is one compare. */
#if defined(__SSE2__)
    __m128i key = candidate_keys(pos, v, first);
    int r = (int)value + 8 - __builtin_popcount((unsigned)_mm_movemask_epi8(
                                 _mm_cmpgt_epi16(key, _mm_set1_epi16((short)value)))) / 2;
#else
    int pc[6], r = (int)value;
    for (int j = 0; j < 6; j++)
        pc[j] = (first >> j) & 1 ? pos[(v >> (8 * j)) & 0xff] : 0x7fff;
    for (int j = 0; j < 6; j++) {
        int key = pc[j];
        for (int m = 0; m < 6; m++)
            key -= pc[m] < pc[j];
        r += key <= (int)value;
    }
#endif
    *px = x;
    *psrc = src;
    return J->order[W * 256 + (r & 0xff)];
}

#if defined(__SSE2__)
/* the symbol of slot in the table whose 8 starts are at st (st[7] = 4096):
 * how many starts 1 .. 6 are <= slot */
#define SYMBOL_OF(slot, st)                                                                            \
    ((unsigned)(__builtin_popcount((unsigned)_mm_movemask_epi8(_mm_cmpgt_epi16(                        \
         _mm_set1_epi16((short)((slot) + 1)), _mm_loadu_si128((const __m128i *)(st)))))) / 2 - 1)
#else
#define SYMBOL_OF(slot, st)                                                                            \
    ((unsigned)((slot) >= (st)[1]) + ((slot) >= (st)[2]) + ((slot) >= (st)[3]) + ((slot) >= (st)[4])  \
     + ((slot) >= (st)[5]) + ((slot) >= (st)[6]))
#endif

/* Lane g's pixel at column i (its state in x##g, src##g, W##g, sl##g; WW is read from the row). */
#define STEP(g)                                                                                        \
    do {                                                                                               \
        const Above *a_ = &above##g[i];                                                                \
        unsigned WW_ = cur##g[i - 2];                                                                  \
        uint64_t v_ = a_->row | W##g | (uint64_t)WW_ << 32;                                            \
        unsigned eq_w_ = equal_mask(v_, W##g), eq_ww_ = equal_mask(v_, WW_);                           \
        unsigned P_ = a_->bits | (eq_w_ >> 1 & 0xf) | (eq_ww_ << 1 & 0x10);                            \
        unsigned t_ = J->map[P_ | sl##g << 10];                                                        \
        const uint16_t *st_ = J->sstart + t_ * 8;                                                      \
        uint32_t slot_ = x##g & (SCALE - 1);                                                           \
        unsigned s_ = SYMBOL_OF(slot_, st_);                                                           \
        x##g = J->sfreq[t_ * 8 + s_] * (x##g >> SCALE_BITS) + slot_ - st_[s_];                         \
        RENORM_FAST(x##g, src##g);                                                                     \
        unsigned first_ = candidates(a_->dup, eq_w_, eq_ww_);                                          \
        unsigned at_ = J->nth[first_ * 8 + s_];                                                        \
        unsigned X_ = (unsigned)(v_ >> (8 * at_)) & 0xff;                                              \
        if (s_ == ESCAPE)                                                                              \
            X_ = escape(J, &x##g, &src##g, W##g, v_, first_, &flags);                                  \
        else                                                                                           \
            flags |= at_ == 7;                                                                         \
        cur##g[i] = (uint8_t)X_;                                                                       \
        W##g = X_;                                                                                     \
        sl##g = s_;                                                                                    \
    } while (0)

/* Lane L's row y: where it goes in the ring, and what the row above gives each pixel. */
static inline uint8_t *start_row(const Job *J, const Lane *L, Py_ssize_t y)
{
    const Py_ssize_t w = J->width, stride = w + 3;
    const uint8_t *up = L->ring + ((y + 2) % 3) * stride + 2, *up2 = L->ring + ((y + 1) % 3) * stride + 2;
    Above *restrict above = L->above;
    Py_ssize_t i = 0;
#if defined(__SSE2__)
    /* 8 pixels at a time (their up[i - 1 .. i + 8] are in the ring row: it
     * has a column on either side), the same values as the loop below:
     * the equalities as byte masks, then the bytes spread to the fields. */
    const __m128i zero = _mm_setzero_si128();
    for (; i + 8 <= w; i += 8) {
        __m128i N = _mm_loadl_epi64((const __m128i *)(up + i));
        __m128i NE = _mm_loadl_epi64((const __m128i *)(up + i + 1));
        __m128i NW = _mm_loadl_epi64((const __m128i *)(up + i - 1));
        __m128i NN = _mm_loadl_epi64((const __m128i *)(up2 + i));
        __m128i n_ne = _mm_cmpeq_epi8(N, NE), nw_n = _mm_cmpeq_epi8(NW, N), nw_ne = _mm_cmpeq_epi8(NW, NE);
        __m128i nn_n = _mm_cmpeq_epi8(NN, N), nn_ne = _mm_cmpeq_epi8(NN, NE), nn_nw = _mm_cmpeq_epi8(NN, NW);
        /* bits >> 5 and dup, a byte each */
        __m128i b = _mm_or_si128(_mm_or_si128(_mm_and_si128(n_ne, _mm_set1_epi8(1)), _mm_and_si128(nw_n, _mm_set1_epi8(2))),
                                 _mm_or_si128(_mm_and_si128(nn_n, _mm_set1_epi8(4)), _mm_and_si128(nw_ne, _mm_set1_epi8(8))));
        b = _mm_or_si128(b, _mm_and_si128(nn_ne, _mm_set1_epi8(16)));
        __m128i d = _mm_or_si128(_mm_and_si128(n_ne, _mm_set1_epi8(4)), _mm_and_si128(_mm_or_si128(nw_n, nw_ne), _mm_set1_epi8(8)));
        d = _mm_or_si128(d, _mm_and_si128(_mm_or_si128(_mm_or_si128(nn_n, nn_ne), nn_nw), _mm_set1_epi8(32)));
        /* row: bytes 0, N, NE, NW, 0, NN, 0, 0 */
        __m128i lo = _mm_unpacklo_epi8(zero, N), mid = _mm_unpacklo_epi8(NE, NW), nn = _mm_unpacklo_epi8(zero, NN);
        __m128i q03 = _mm_unpacklo_epi16(lo, mid), q47 = _mm_unpackhi_epi16(lo, mid);
        __m128i h03 = _mm_unpacklo_epi16(nn, zero), h47 = _mm_unpackhi_epi16(nn, zero);
        /* then bits and dup as 32-bit words */
        __m128i b16 = _mm_slli_epi16(_mm_unpacklo_epi8(b, zero), 5), d16 = _mm_unpacklo_epi8(d, zero);
        __m128i b03 = _mm_unpacklo_epi16(b16, zero), b47 = _mm_unpackhi_epi16(b16, zero);
        __m128i d03 = _mm_unpacklo_epi16(d16, zero), d47 = _mm_unpackhi_epi16(d16, zero);
        __m128i r[4] = {_mm_unpacklo_epi32(q03, h03), _mm_unpackhi_epi32(q03, h03), _mm_unpacklo_epi32(q47, h47),
                        _mm_unpackhi_epi32(q47, h47)};
        __m128i t[4] = {_mm_unpacklo_epi32(b03, d03), _mm_unpackhi_epi32(b03, d03), _mm_unpacklo_epi32(b47, d47),
                        _mm_unpackhi_epi32(b47, d47)};
        for (int k = 0; k < 4; k++) {
            _mm_storeu_si128((__m128i *)&above[i + 2 * k], _mm_unpacklo_epi64(r[k], t[k]));
            _mm_storeu_si128((__m128i *)&above[i + 2 * k + 1], _mm_unpackhi_epi64(r[k], t[k]));
        }
    }
#endif
    for (; i < w; i++) {
        uint32_t N = up[i], NE = up[i + 1], NW = up[i - 1], NN = up2[i];
        above[i].row = (uint64_t)N << 8 | (uint64_t)NE << 16 | (uint64_t)NW << 24 | (uint64_t)NN << 40;
        above[i].dup = (NE == N) << 2 | (NW == N || NW == NE) << 3 | (NN == N || NN == NE || NN == NW) << 5;
        above[i].bits = (N == NE) << 5 | (NW == N) << 6 | (N == NN) << 7 | (NW == NE) << 8 | (NN == NE) << 9;
    }
    return L->ring + (y % 3) * stride + 2;
}


#define LANE_VARS(g)                                                                                   \
    uint32_t x##g = lanes[(g) < G ? (g) : 0].x;                                                        \
    const uint8_t *src##g = lanes[(g) < G ? (g) : 0].src;                                              \
    const Above *above##g = lanes[(g) < G ? (g) : 0].above;                                            \
    uint8_t *cur##g;                                                                                   \
    unsigned W##g, sl##g

/* Rows y0 .. y1 - 1 of G lanes in lockstep: 0, or 1 when a check failed. */
static inline __attribute__((always_inline)) int run_rows(const Job *J, Lane *lanes, const int G,
                                                          Py_ssize_t y0, Py_ssize_t y1)
{
    const Py_ssize_t w = J->width;
    uint32_t flags = 0;
    LANE_VARS(0);
    LANE_VARS(1);
    for (Py_ssize_t y = y0; y < y1; y++) {
        cur0 = start_row(J, &lanes[0], y);
        cur1 = G > 1 ? start_row(J, &lanes[1], y) : cur0;
        W0 = W1 = 0;
        sl0 = sl1 = ESCAPE;
        for (Py_ssize_t i = 0; i < w; i++) {
            STEP(0);
            if (G > 1)
                STEP(1);
        }
        if (flags || src0 > lanes[0].end || (G > 1 && src1 > lanes[1].end))
            return 1;
        write_row(J, lanes[0].top + y, cur0);
        if (G > 1)
            write_row(J, lanes[1].top + y, cur1);
    }
    lanes[0].x = x0;
    lanes[0].src = src0;
    if (G > 1) {
        lanes[1].x = x1;
        lanes[1].src = src1;
    }
    return 0;
}

/* One or two bands (lanes[0] above lanes[1]; only the second can be shorter):
 * 0, or 1 when a check failed or a band did not end exactly. */
DECODER_CLONES
static int fast_bands(const Job *J, Lane *lanes, int G)
{
    for (int g = 0; g < G; g++) {
        memset(lanes[g].ring, 0, 3 * (size_t)(J->width + 3));
        if (lanes[g].x < RANS_L || lanes[g].x >= (1u << 31))
            return 1; /* the renormalisation needs x in range: the checked loop decides */
    }
    Py_ssize_t common = lanes[G - 1].rows;
    if (G == 2 ? run_rows(J, lanes, 2, 0, common) : run_rows(J, lanes, 1, 0, common))
        return 1;
    if (common < lanes[0].rows && run_rows(J, lanes, 1, common, lanes[0].rows))
        return 1;
    for (int g = 0; g < G; g++)
        if (lanes[g].x != RANS_L || lanes[g].src != lanes[g].end)
            return 1;
    return 0;
}

static void decode_bands(Job *J, int who)
{
    /* before anything can fail: the others wait for the rows */
    rank_rows(J->rank_cb, J->n, J->rank_stride, J->order, J->position, &J->next_row, &J->rows_done);
    const Py_ssize_t w = J->width;
    Lane lanes[2];
    uint8_t *copy[2] = {NULL, NULL};
    size_t copy_size[2] = {0, 0};
    memset(lanes, 0, sizeof lanes);
    for (int g = 0; g < 2; g++) {
        lanes[g].ring = PyMem_RawMalloc(3 * (size_t)(w + 3));
        lanes[g].above = PyMem_RawMalloc((size_t)w * sizeof(Above));
        if (!lanes[g].ring || !lanes[g].above) {
            J->nomem[who] = 1;
            goto done;
        }
    }
    for (;;) { /* bands 2p and 2p + 1 together */
        Py_ssize_t first = (Py_ssize_t)CLAIM(J->next_band) * 2;
        if (first >= J->count)
            break;
        Py_ssize_t which[2];
        int G = 0;
        for (Py_ssize_t b = first; b < J->count && b < first + 2; b++) {
            if (J->error[b]) /* refused before decoding (a short stream) */
                continue;
            /* a copy of the band's bytes with room for a row to read past them:
             * a pixel reads at most 6 bytes */
            size_t len = (size_t)(J->end[b] - J->src[b]), need = len + 6 * (size_t)w + 16;
            if (need > copy_size[G]) {
                PyMem_RawFree(copy[G]);
                copy[G] = PyMem_RawMalloc(need);
                copy_size[G] = copy[G] ? need : 0;
                if (!copy[G]) {
                    J->nomem[who] = 1;
                    goto done;
                }
            }
            memcpy(copy[G], J->src[b], len);
            memset(copy[G] + len, 0, need - len);
            Lane *L = &lanes[G];
            L->x = J->state[b];
            L->src = copy[G];
            L->end = copy[G] + len;
            L->top = b * J->band_rows;
            L->rows = J->rows_total - L->top < J->band_rows ? J->rows_total - L->top : J->band_rows;
            which[G++] = b;
        }
        if (G && fast_bands(J, lanes, G))
            for (int g = 0; g < G; g++)
                decode_band(J, which[g], lanes[0].ring);
    }
done:
    for (int g = 0; g < 2; g++) {
        PyMem_RawFree(lanes[g].ring);
        PyMem_RawFree(lanes[g].above);
        PyMem_RawFree(copy[g]);
    }
}

static void decode_bands_of(void *job, int who) { decode_bands(job, who); }

/* decode_image(streams, out, width, band_rows, book, channels, pixels, map,
 *              symbol_freq, symbol_start, escape_freq, escape_start, threads)
 *   -> None, or (band, reason) for the first band that is corrupt.
 *
 * streams: each band's bytes (state, then stream); out: writable, the image's
 * indices (pixels false) or its pixels of `channels` bytes; book: the
 * codebook, n entries of `channels` bytes (the rank lists are made from it
 * here); map: 7168 bytes; symbol_freq/start: uint16 (tables, 7);
 * escape_freq/start: uint16 (9, 16).  The tables must be those read_model
 * accepted (§5.5.4). */
static PyObject *cand_decode_image(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *seq;
    Py_buffer out, bk, mp, sf, ss, ef, es;
    Py_ssize_t width, band_rows;
    int channels, pixels, threads;
    if (!PyArg_ParseTuple(args, "Ow*nny*ipy*y*y*y*y*i", &seq, &out, &width, &band_rows, &bk, &channels,
                          &pixels, &mp, &sf, &ss, &ef, &es, &threads))
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
    if (width < 1 || band_rows < 1 || channels < 1 || channels > MAX_ENTRY || bk.len % channels || n < 1
        || n > 256 || mp.len != RAW_CONTEXTS || tables < 1 || tables > MAX_TABLES
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
    J->rank_stride = (unsigned)channels;
    J->rank_cb = rank_book(J->book, (unsigned)n, &J->rank_stride, J->rank_pad);
    J->pixels = pixels;
    J->out = out.buf;
    int nomem = 0;
    Py_BEGIN_ALLOW_THREADS
    if (pixels && channels == 3)
        for (Py_ssize_t e = 0; e < n; e++)
            memcpy(J->book4 + 4 * e, J->book + 3 * e, 3);
    memcpy(J->map, mp.buf, RAW_CONTEXTS);
    memcpy(J->nth, NTH, sizeof NTH);
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
    if (want > (count + 1) / 2)
        want = (count + 1) / 2;
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
    PyBuffer_Release(&mp);
    PyBuffer_Release(&sf);
    PyBuffer_Release(&ss);
    PyBuffer_Release(&ef);
    PyBuffer_Release(&es);
    return result;
}

static PyMethodDef methods[] = {
    {"symbols", cand_symbols, METH_VARARGS, "symbols(grid, width, n, order) -> (raw, symbol, value, context)"},
    {"encode_band", cand_encode_band, METH_VARARGS,
     "encode_band(raw, symbol, value, context, map, symbol_freq, symbol_start, escape_freq, escape_start) -> bytes"},
    {"parse_tables", cand_parse_tables, METH_VARARGS,
     "parse_tables(raw, tables) -> (symbol_freq, escape_freq, used) or None"},
    {"decode_image", cand_decode_image, METH_VARARGS,
     "decode_image(streams, out, width, band_rows, book, channels, pixels, map, symbol_freq, "
     "symbol_start, escape_freq, escape_start, threads) -> None or (band, reason)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "vqcodec._candcoder",
    "The rANS loops of index coder 3; see vqcodec/coders/cand.py.", -1, methods,
};

PyMODINIT_FUNC PyInit__candcoder(void)
{
    for (unsigned mask = 0; mask < 64; mask++)
        for (unsigned s = 0; s < 8; s++) {
            unsigned seen = 0, at = 7;
            for (unsigned j = 0; j < 6; j++)
                if (mask >> j & 1 && seen++ == s) {
                    at = j;
                    break;
                }
            NTH[mask * 8 + s] = (uint8_t)at;
        }
    return PyModule_Create(&module);
}
