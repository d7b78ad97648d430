/* Prototype decoder of the recommended index coder 3 ("cand"), for timing only
 * (bench/research/index_coder_speed.py builds it, encodes with Python, times this
 * against coder 2's C decoder).  One band, one rANS state, no checks beyond the end.
 *
 * Per pixel: the neighbours W N NE NW WW NN (0 outside), 28 properties (as
 * index_coder_probe.mode_props(which="all") + value_props(levels=16)), the
 * candidate symbol's context = lut1[packed bits of (prop > threshold) tests],
 * its symbol from a 4096-slot table; an escape (symbol 6) decodes the index
 * with the escape context (same scheme, lut2).
 */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#define NPROPS 28
#define ESC 6

static inline unsigned lb12(uint32_t d) { /* log_bucket(d, 12): 0 for 0, else min(12, 1 + floor(log2 d)) */
    if (!d) return 0;
    unsigned b = 32 - __builtin_clz(d);
    return b > 12 ? 12 : b;
}

/* the properties that depend on W, WW or the left symbol */
static inline void pixel_props(int32_t *pr, unsigned W, unsigned WW, unsigned N, unsigned NW, unsigned NE,
                               unsigned NN, unsigned mleft, const uint8_t *bucket, int k,
                               const uint8_t *lum16, const uint8_t *val16)
{
    unsigned n1 = N != W, n2 = (NE != W) & (NE != N), n3 = (NW != W) & (NW != N) & (NW != NE);
    unsigned n4 = (WW != W) & (WW != N) & (WW != NE) & (WW != NW);
    unsigned n5 = (NN != W) & (NN != N) & (NN != NE) & (NN != NW) & (NN != WW);
    pr[0] = W == N; pr[2] = W == NW; pr[4] = W == WW; pr[6] = W == NE; pr[8] = WW == NW;
    pr[10] = mleft; pr[12] = 1 + n1 + n2 + n3 + n4 + n5;
    pr[13] = bucket[W * k + N]; pr[15] = bucket[W * k + NW]; pr[17] = lum16[W];
    pr[18] = val16[W]; pr[22] = val16[WW];
    pr[24] = pr[0] | (N == NE) << 1 | pr[2] << 2 | (NW == N) << 3;
    pr[25] = pr[4] | (N == NN) << 1;
    pr[26] = pr[13];
}

/* fast = 1: the candidate context word is the fixed pixel part (W=N, W=NW, W=NE, W=WW,
 * left symbol; 7 bits) above the nt1 row-only tests ("K fast"); the other properties
 * are computed only for escapes */
int cand_decode(int fast, const uint8_t *stream, size_t len, int w, int h, int k,
                const uint32_t *dist,    /* k*k squared distances */
                const uint8_t *lum16,    /* k: luma // 16 */
                const uint8_t *val16,    /* k: v * min(16,k) // k */
                int nt1, const int32_t *tp1, const int32_t *tt1, const uint16_t *lut1,
                const uint16_t *cum1, const uint8_t *bkt1, /* ctx*(7+1) cumulative starts, ctx*64 first symbols */
                int nt2, const int32_t *tp2, const int32_t *tt2, const uint16_t *lut2,
                const uint16_t *cum2, const uint8_t *bkt2, /* ctx*(k+1), ctx*64 */
                uint8_t *out, uint8_t *symrow /* 2*w scratch */)
{
    const uint8_t *p = stream + 4, *end = stream + len;
    uint32_t x;
    memcpy(&x, stream, 4);
    uint8_t *prev_sym = symrow, *cur_sym = symrow + w;
    memset(prev_sym, ESC, w);
    uint8_t bucket[256 * 256];
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) bucket[a * k + b] = (uint8_t)lb12(dist[a * k + b] / 4);
    /* tests on properties of the row above only (not on W, WW or the left symbol) are
     * evaluated for the whole row before it is decoded: only the rest sit on the
     * pixel-to-pixel dependency chain */
    static const uint8_t row_only[NPROPS] = {0,1,0,1,0,1,0,1,0,1, 0,1,0,0,1,0,1,0, 0,1,1,1,0,1, 0,0,0,1};
    int nw1 = 0, nw2 = 0, wp1[16], wt1[16], ws1[16], wp2[16], wt2[16], ws2[16];
    for (int t = 0; t < nt1; t++) if (!row_only[tp1[t]]) { wp1[nw1] = tp1[t]; wt1[nw1] = tt1[t]; ws1[nw1++] = nt1 - 1 - t; }
    for (int t = 0; t < nt2; t++) if (!row_only[tp2[t]]) { wp2[nw2] = tp2[t]; wt2[nw2] = tt2[t]; ws2[nw2++] = nt2 - 1 - t; }
    uint16_t rw1[w > 0 ? w : 1], rw2[w > 0 ? w : 1];
    /* row properties (prototype: width <= 8192); rows 8192 + 96 apart: 8192 apart, their
     * stores alias every 4 KiB and the row pass took 10x longer */
    static uint8_t rp[NPROPS][8192 + 96];
    if (w > 8192) return -3;
    int32_t pr[NPROPS];
    for (int y = 0; y < h; y++) {
        uint8_t *o = out + (size_t)y * w;
        const uint8_t *up = y ? o - w : NULL, *up2 = y > 1 ? o - 2 * w : NULL;
        /* the row part of the context words: each row-only property for the whole row,
         * then each row-only test over the row (loops the compiler vectorises) */
        for (int i = 0; i < w; i++) {
            unsigned N = up ? up[i] : 0, NW = up && i ? up[i - 1] : 0, NE = up && i + 1 < w ? up[i + 1] : 0;
            unsigned NN = up2 ? up2[i] : 0;
            rp[1][i] = N == NE; rp[3][i] = NW == N; rp[5][i] = N == NN; rp[7][i] = NW == NE; rp[9][i] = NN == NE;
            rp[11][i] = prev_sym[i]; rp[14][i] = bucket[N * k + NE]; rp[16][i] = bucket[N * k + NW];
            rp[19][i] = val16[N]; rp[20][i] = val16[NW]; rp[21][i] = val16[NE]; rp[23][i] = val16[NN];
            rp[27][i] = rp[14][i];
        }
        memset(rw1, 0, sizeof(uint16_t) * w);
        memset(rw2, 0, sizeof(uint16_t) * w);
        for (int t = 0; t < nt1; t++) if (row_only[tp1[t]]) {
            const uint8_t *q = rp[tp1[t]]; int th = tt1[t], sh = nt1 - 1 - t;
            for (int i = 0; i < w; i++) rw1[i] |= (uint16_t)((q[i] > th) << sh);
        }
        for (int t = 0; t < nt2; t++) if (row_only[tp2[t]]) {
            const uint8_t *q = rp[tp2[t]]; int th = tt2[t], sh = nt2 - 1 - t;
            for (int i = 0; i < w; i++) rw2[i] |= (uint16_t)((q[i] > th) << sh);
        }
        unsigned mleft = ESC;
        for (int i = 0; i < w; i++) {
            unsigned W = i ? o[i - 1] : 0, WW = i > 1 ? o[i - 2] : 0;
            unsigned N = up ? up[i] : 0, NW = up && i ? up[i - 1] : 0, NE = up && i + 1 < w ? up[i + 1] : 0;
            unsigned NN = up2 ? up2[i] : 0;
            unsigned word;
            if (fast) {
                word = ((W == N) | (W == NW) << 1 | (W == NE) << 2 | (W == WW) << 3 | mleft << 4) << nt1 | rw1[i];
            } else {
                pixel_props(pr, W, WW, N, NW, NE, NN, mleft, bucket, k, lum16, val16);
                word = rw1[i];
                for (int t = 0; t < nw1; t++) word |= (unsigned)(pr[wp1[t]] > wt1[t]) << ws1[t];
            }
            unsigned cx = lut1[word];
            uint32_t slot = x & 4095;
            const uint16_t *cu = cum1 + cx * 8;
            unsigned s = bkt1[cx * 64 + (slot >> 6)];
            while (cu[s + 1] <= slot) s++;
            x = (uint32_t)(cu[s + 1] - cu[s]) * (x >> 12) + slot - cu[s];
            while (x < (1u << 23)) { if (p >= end) return -1; x = x << 8 | *p++; }
            unsigned v;
            if (s == 0) {
                v = W;
            } else if (s < ESC) {
                unsigned c[6] = {W, N, NE, NW, WW, NN}, list[6], nd = 0;
                for (int j = 0; j < 6 && nd <= s; j++) {
                    unsigned vv = c[j], seen = 0;
                    for (unsigned q = 0; q < nd; q++) seen |= list[q] == vv;
                    if (!seen) list[nd++] = vv;
                }
                v = list[s];
            } else {
                if (fast) pixel_props(pr, W, WW, N, NW, NE, NN, mleft, bucket, k, lum16, val16);
                unsigned word2 = rw2[i];
                for (int t = 0; t < nw2; t++) word2 |= (unsigned)(pr[wp2[t]] > wt2[t]) << ws2[t];
                unsigned ce = lut2[word2];
                slot = x & 4095;
                const uint16_t *ce_cum = cum2 + ce * (k + 1);
                v = bkt2[ce * 64 + (slot >> 6)];
                while (ce_cum[v + 1] <= slot) v++;
                x = (uint32_t)(ce_cum[v + 1] - ce_cum[v]) * (x >> 12) + slot - ce_cum[v];
                while (x < (1u << 23)) { if (p >= end) return -1; x = x << 8 | *p++; }
            }
            o[i] = (uint8_t)v;
            cur_sym[i] = (uint8_t)s;
            mleft = s;
        }
        uint8_t *t = prev_sym; prev_sym = cur_sym; cur_sym = t;
    }
    return (p == end && x == (1u << 23)) ? 0 : -2;
}
