/* Random numbers. Every random stream is derived from (seed, purpose, index...)
 * with a hash, never from global state, so results are reproducible and can be
 * recomputed at any point (resume, per-sample augmentation under OpenMP). */
#ifndef OL_CORE_RNG_H
#define OL_CORE_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} ol__rng;

enum { OL__RNG_INIT = 1, OL__RNG_SHUFFLE = 2, OL__RNG_AUGMENT = 3, OL__RNG_SPLIT = 4, OL__RNG_DATA = 5 };

/* splitmix64 finaliser: a good 64-bit mixer */
static inline uint64_t ol__mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t ol__hash3(uint64_t a, uint64_t b, uint64_t c)
{
    return ol__mix64(ol__mix64(ol__mix64(a) ^ b) ^ c);
}

void ol__rng_seed(ol__rng *r, uint64_t seed, uint64_t stream, uint64_t index);
uint64_t ol__rng_u64(ol__rng *r);
double ol__rng_uniform(ol__rng *r);         /* [0, 1), 53 bits */
double ol__rng_normal(ol__rng *r);          /* N(0, 1), Box-Muller */
uint32_t ol__rng_below(ol__rng *r, uint32_t n); /* uniform in [0, n), unbiased */

#endif
