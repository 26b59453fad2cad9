/* Deterministic reductions: fixed-size chunks summed in double, chunk results
 * combined in order, so the result does not depend on the thread count. */
#ifndef OL_CORE_REDUCE_H
#define OL_CORE_REDUCE_H

#include <stddef.h>

#define OL__REDUCE_CHUNK 8192

double ol__sumsq(const float *x, size_t n);
double ol__dot(const float *x, const float *y, size_t n);

#endif
