/* vqcodec/_ranks.h: the rank lists of index coders 2 and 3 (spec §5.4.2):
 * order[a] lists the codebook's entries by squared distance from entry a,
 * ties by index.  Both decoders build them on their decoding threads
 * (rank_rows); coder 2's rank_order gives them to Python. */
#ifndef VQCODEC_RANKS_H
#define VQCODEC_RANKS_H

#include <stdint.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
#endif
#include "_workers.h"

#define MAX_ENTRY 256 /* bytes of a codebook entry: an 8x8 RGBA block (spec §3.1) */

/* One row of the rank lists: out[r] = the entry of rank r from entry a, by
 * squared distance, ties by index (spec §5.4.2).  cb: n entries of `channels`
 * bytes; callers pass 2 or 3 channels as 4 with a zero byte (the distances
 * are the same, and with a constant 1 or 4 the compiler vectorises them).
 * The keys distance << 8 | entry (a distance is below 2^24: at most
 * MAX_ENTRY channels, spec §3.1) are put in order by a stable LSD radix sort
 * (the entries start in index order, so equal distances keep it), in as few
 * passes of at most 9 bits as the row's largest distance needs: two for a
 * photo's codebook (distances below 2^18). */
DECODER_CLONES
static void rank_row(const uint8_t *cb, unsigned n, unsigned channels, unsigned a, uint8_t *out)
{
    uint32_t key[256], tmp[256], bits = 0;
    const uint8_t *e = cb + (size_t)a * channels;
#define DISTANCE_KEYS(C)                                                            \
    for (unsigned b = 0; b < n; b++) {                                              \
        uint32_t d = 0;                                                             \
        for (unsigned c = 0; c < (C); c++) {                                        \
            int diff = (int)e[c] - (int)cb[(size_t)b * (C) + c];                    \
            d += (uint32_t)(diff * diff);                                           \
        }                                                                           \
        key[b] = d << 8 | b;                                                        \
        bits |= d; /* its bit length is the largest distance's */                  \
    }
    if (channels == 4)
        DISTANCE_KEYS(4)
    else if (channels == 1)
        DISTANCE_KEYS(1)
    else
        DISTANCE_KEYS(channels)
#undef DISTANCE_KEYS
    unsigned length = bits ? 32 - (unsigned)__builtin_clz(bits) : 0;
    unsigned passes = (length + 8) / 9;
    unsigned width = passes ? (length + passes - 1) / passes : 0, mask = (1u << width) - 1;
    unsigned count[3][512]; /* 3 passes of at most 9 bits: below 2^27 */
    memset(count, 0, passes * sizeof *count);
    for (unsigned j = 0; j < n; j++) { /* every pass's histogram at once */
        uint32_t k = key[j] >> 8;
        count[0][k & mask]++;
        if (passes > 1)
            count[1][k >> width & mask]++;
        if (passes > 2)
            count[2][k >> 2 * width & mask]++;
    }
    uint32_t *src = key, *dst = tmp;
    for (unsigned p = 0; p < passes; p++) {
        unsigned shift = 8 + p * width, *at = count[p], sum = 0;
        /* the counts become where each digit starts (the last pass's digits
         * go up to the largest distance's, not always to the mask) */
        unsigned top = p + 1 == passes ? bits >> (p * width) : mask;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 8
#endif
        for (unsigned j = 0; j <= top; j++) {
            unsigned c = at[j];
            at[j] = sum;
            sum += c;
        }
        if (p + 1 == passes) { /* the last pass writes the entries out */
            for (unsigned j = 0; j < n; j++)
                out[at[src[j] >> shift & mask]++] = (uint8_t)src[j];
            return;
        }
        for (unsigned j = 0; j < n; j++)
            dst[at[src[j] >> shift & mask]++] = src[j];
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    for (unsigned b = 0; b < n; b++) /* every distance 0: index order */
        out[b] = (uint8_t)b;
}

/* The codebook for rank_row: 2 or 3 channels padded to 4 in pad (n * 4
 * bytes), else as it is; *channels becomes the stride. */
static const uint8_t *rank_book(const uint8_t *cb, unsigned n, unsigned *channels, uint8_t *pad)
{
    if (*channels != 2 && *channels != 3)
        return cb;
    memset(pad, 0, (size_t)n * 4);
    for (unsigned e = 0; e < n; e++)
        memcpy(pad + 4 * e, cb + (size_t)*channels * e, *channels);
    *channels = 4;
    return pad;
}

/* The rank lists of a codebook as rank_book gave it (cb, `stride` bytes
 * apart), a row at a time on every thread that calls this, rows claimed
 * through *next_row and counted in *rows_done; then a wait for the rows the
 * others took.  order[a * 256 + r]; with position, also its inverse
 * position[a * 256 + b] (where b is in order[a]).  (A k = 256 codebook's rows
 * were ~0.8 ms of one thread before a decode could start.) */
static void rank_rows(const uint8_t *cb, unsigned n, unsigned stride, uint8_t *order, uint8_t *position,
                      uint32_t *next_row, uint32_t *rows_done)
{
    for (;;) {
        unsigned a = CLAIM(*next_row);
        if (a >= n)
            break;
        uint8_t *row = order + a * 256;
        rank_row(cb, n, stride, a, row);
        if (position)
            for (unsigned r = 0; r < n; r++)
                position[a * 256 + row[r]] = (uint8_t)r;
        DONE(*rows_done);
    }
    for (unsigned spins = 0; COUNT(*rows_done) < n; spins++) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
#if defined(__unix__) || defined(__APPLE__)
        if (spins > 1000) /* another thread was descheduled in the middle of a row */
            sched_yield();
#endif
    }
}

#endif
