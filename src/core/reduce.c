#include <stdlib.h>

#include "core/internal.h"
#include "core/reduce.h"

static double chunk_sumsq(const float *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * (double)x[i];
    return s;
}

static double chunk_dot(const float *x, const float *y, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * (double)y[i];
    return s;
}

/* Up to this many chunks, partials live on the stack. */
#define OL__REDUCE_STACK 512

static double reduce(const float *x, const float *y, size_t n)
{
    size_t nch = (n + OL__REDUCE_CHUNK - 1) / OL__REDUCE_CHUNK;
    if (nch <= 1)
        return y ? chunk_dot(x, y, n) : chunk_sumsq(x, n);
    double stackbuf[OL__REDUCE_STACK];
    double *part = nch <= OL__REDUCE_STACK ? stackbuf : malloc(nch * sizeof *part);
    if (!part) { /* sequential fallback gives the same chunked order */
        double s = 0.0;
        for (size_t c = 0; c < nch; c++) {
            size_t lo = c * OL__REDUCE_CHUNK, len = n - lo < OL__REDUCE_CHUNK ? n - lo : OL__REDUCE_CHUNK;
            s += y ? chunk_dot(x + lo, y + lo, len) : chunk_sumsq(x + lo, len);
        }
        return s;
    }
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nch; c++) {
        size_t lo = c * OL__REDUCE_CHUNK, len = n - lo < OL__REDUCE_CHUNK ? n - lo : OL__REDUCE_CHUNK;
        part[c] = y ? chunk_dot(x + lo, y + lo, len) : chunk_sumsq(x + lo, len);
    }
    double s = 0.0;
    for (size_t c = 0; c < nch; c++)
        s += part[c];
    if (part != stackbuf)
        free(part);
    return s;
}

double ol__sumsq(const float *x, size_t n) { return reduce(x, NULL, n); }
double ol__dot(const float *x, const float *y, size_t n) { return reduce(x, y, n); }
