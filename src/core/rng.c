#include <math.h>

#include "core/rng.h"

/* xoshiro256** (Blackman & Vigna), seeded through splitmix64 */
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void ol__rng_seed(ol__rng *r, uint64_t seed, uint64_t stream, uint64_t index)
{
    uint64_t z = ol__hash3(seed, stream, index);
    for (int i = 0; i < 4; i++) {
        z = ol__mix64(z + (uint64_t)i);
        r->s[i] = z;
    }
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1;
}

uint64_t ol__rng_u64(ol__rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ol__rng_uniform(ol__rng *r) { return (double)(ol__rng_u64(r) >> 11) * 0x1.0p-53; }

double ol__rng_normal(ol__rng *r)
{
    double u1 = ol__rng_uniform(r), u2 = ol__rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint32_t ol__rng_below(ol__rng *r, uint32_t n)
{
    /* Lemire's multiply-shift with rejection */
    uint64_t m = (uint64_t)(uint32_t)(ol__rng_u64(r) >> 32) * n;
    uint32_t lo = (uint32_t)m;
    if (lo < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (lo < t) {
            m = (uint64_t)(uint32_t)(ol__rng_u64(r) >> 32) * n;
            lo = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}
