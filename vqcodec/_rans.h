/* vqcodec/_rans.h: the rANS of index coders 2 and 3 (spec §5.4.4, §5.4.5): a
 * 32-bit state, byte-wise renormalisation, L = 2^23, 12-bit frequencies, as
 * in F. Giesen's public domain ryg_rans.  Encoding writes backwards. */
#ifndef VQCODEC_RANS_H
#define VQCODEC_RANS_H

#include <Python.h>
#include <stdint.h>

#define SCALE_BITS 12
#define SCALE (1u << SCALE_BITS)
#define RANS_L (1u << 23)

/* Code one symbol of frequency f (>= 1) and start s into state x, writing the
 * renormalisation bytes down from *p. */
static inline uint32_t rans_put(uint32_t x, uint32_t f, uint32_t s, uint8_t **p)
{
    uint32_t x_max = ((RANS_L >> SCALE_BITS) << 8) * f;
    while (x >= x_max) {
        *--*p = (uint8_t)(x & 0xff);
        x >>= 8;
    }
    return ((x / f) << SCALE_BITS) + (x % f) + s;
}

/* The final state, little-endian, in the 4 bytes before *p. */
static inline void rans_put_state(uint32_t x, uint8_t **p)
{
    *p -= 4;
    (*p)[0] = (uint8_t)x;
    (*p)[1] = (uint8_t)(x >> 8);
    (*p)[2] = (uint8_t)(x >> 16);
    (*p)[3] = (uint8_t)(x >> 24);
}

/* A v14 at *pos (§5.4.3, the integers of both coders' table parts): 0 when
 * it is cut short or not minimal. */
static inline int v14(const uint8_t *d, Py_ssize_t len, Py_ssize_t *pos, unsigned *value)
{
    if (*pos >= len)
        return 0;
    unsigned first = d[(*pos)++];
    if (first < 0x80) {
        *value = first;
        return 1;
    }
    if (*pos >= len)
        return 0;
    unsigned second = d[(*pos)++];
    if (second >= 0x80 || second == 0)
        return 0;
    *value = (first & 0x7f) | (second << 7);
    return 1;
}

#endif
