/* Branch-free exp and tanh that the compiler vectorises (glibc's expf and
 * tanhf are calls it cannot, without -ffast-math). Pure functions of their
 * argument: the same input gives the same bits on every thread and run.
 * ol__expf: Cephes' expf (range reduction by n ln 2 in two parts, degree-6
 * polynomial), within 2 ulp of exp over [-87, 88]; below -87.3 it returns
 * exp(-87.3) (about 1.2e-38) instead of a denormal or 0, above 88.3 inf
 * (through the 2^n scale). NaN gives NaN. */
#ifndef OL_NN_VMATH_H
#define OL_NN_VMATH_H

#include <stdint.h>
#include <string.h>

static inline float ol__expf(float x)
{
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f * 2.0f : x;                                   /* n = 255: the scale is inf */
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round(x / ln 2) */
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* unsigned: n + 127 reaches 382 for the clamped inf case, past int's range once shifted */
    uint32_t e = (uint32_t)((int32_t)n + 127) << 23;
    e = n > 127.0f ? 0x7f800000u : e; /* inf */
    float s;
    memcpy(&s, &e, sizeof s);
    return x != x ? x : p * s;
}

/* tanh(u) = 1 - 2 / (exp(2u) + 1): -1 and 1 at the ends, within about 1e-7
 * absolute (not relative: tanh of a tiny u is not u to the last bit). */
static inline float ol__tanhf(float u) { return 1.0f - 2.0f / (ol__expf(2.0f * u) + 1.0f); }

#endif
