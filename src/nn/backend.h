/* Compute backends: matrix products and the oneDNN engine. */
#ifndef OL_NN_BACKEND_H
#define OL_NN_BACKEND_H

#include <stdint.h>

#include "core/internal.h"

int ol__backend_have_onednn(void);
int ol__backend_acquire(ol_ctx *ctx); /* create the oneDNN engine and stream once */
void ol__backend_release(ol_ctx *ctx);
void ol__blas_set_threads(int threads);

/* Row-major C[M,N] = alpha * op(A) op(B) + beta * C, op = transpose when trans != 0.
 * Dispatches on the context's backend (REF: plain loops with double accumulation). */
void ol__sgemm(const ol_ctx *ctx, int transa, int transb, int64_t M, int64_t N, int64_t K, float alpha,
               const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* The reference product, callable directly by tests. */
void ol__sgemm_ref(int transa, int transb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* Channel block of the activation layout oneDNN's convolutions run fastest on
 * for this CPU: 16 with AVX-512, 8 otherwise. */
int ol__native_channel_block(void);

#endif
