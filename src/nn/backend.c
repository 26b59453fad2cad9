#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "nn/backend.h"

#ifdef OL_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

/* Provided by OpenBLAS; not in every cblas.h. */
extern char *openblas_get_corename(void);
extern void openblas_set_num_threads(int);

int ol__backend_have_onednn(void)
{
#ifdef OL_HAVE_ONEDNN
    return 1;
#else
    return 0;
#endif
}

int ol__backend_acquire(ol_ctx *ctx)
{
#ifdef OL_HAVE_ONEDNN
    if (ctx->dnnl_engine)
        return OL_OK;
    dnnl_engine_t eng;
    dnnl_stream_t st;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success)
        return ol__err(ctx, OL_EBACKEND, "oneDNN: cannot create a CPU engine");
    if (dnnl_stream_create(&st, eng, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_engine_destroy(eng);
        return ol__err(ctx, OL_EBACKEND, "oneDNN: cannot create a stream");
    }
    ctx->dnnl_engine = eng;
    ctx->dnnl_stream = st;
    return OL_OK;
#else
    return ol__err(ctx, OL_ENOTSUP, "built without oneDNN");
#endif
}

void ol__backend_release(ol_ctx *ctx)
{
#ifdef OL_HAVE_ONEDNN
    if (ctx->dnnl_stream)
        dnnl_stream_destroy((dnnl_stream_t)ctx->dnnl_stream);
    if (ctx->dnnl_engine)
        dnnl_engine_destroy((dnnl_engine_t)ctx->dnnl_engine);
#endif
    ctx->dnnl_stream = NULL;
    ctx->dnnl_engine = NULL;
}

void ol__blas_set_threads(int threads) { openblas_set_num_threads(threads); }

const char *ol_openblas_corename(void)
{
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}

int ol_openblas_misdetected(const char **suggest)
{
    static const char *const generic[] = {"prescott", "core2", "penryn", "dunnington", "nehalem", "atom",
                                          "katmai", "coppermine", "northwood", "banias", "generic",
                                          "sandybridge"};
    const char *core = ol_openblas_corename();
    int is_generic = 0;
    for (size_t i = 0; i < sizeof generic / sizeof generic[0]; i++)
        if (strcasecmp(core, generic[i]) == 0)
            is_generic = 1;
    const char *s = NULL;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq"))
        s = "SKYLAKEX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        s = "HASWELL";
#endif
    if (suggest)
        *suggest = s;
    return is_generic && s != NULL;
}

int ol__native_channel_block(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return 16;
#endif
    return 8;
}

void ol_ctx_kernel_info(const ol_ctx *ctx, char *buf, size_t cap)
{
    char dnn[128] = "oneDNN: not built in";
#ifdef OL_HAVE_ONEDNN
    const dnnl_version_t *v = dnnl_version();
    static const struct {
        dnnl_cpu_isa_t isa;
        const char *name;
    } isas[] = {{dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"},
                {dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"},
                {dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"},
                {dnnl_cpu_isa_avx512_core, "avx512_core"},
                {dnnl_cpu_isa_avx2_vnni, "avx2_vnni"},
                {dnnl_cpu_isa_avx2, "avx2"},
                {dnnl_cpu_isa_avx, "avx"},
                {dnnl_cpu_isa_sse41, "sse41"}};
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    const char *iname = "generic";
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++)
        if (isa == isas[i].isa) {
            iname = isas[i].name;
            break;
        }
    snprintf(dnn, sizeof dnn, "oneDNN %d.%d.%d (%s)", v->major, v->minor, v->patch, iname);
#endif
    const char *suggest = NULL;
    int bad = ol_openblas_misdetected(&suggest);
    snprintf(buf, cap, "backend %s; gemm %s; %s; OpenBLAS core %s%s%s", ol_backend_name(ctx->backend),
             ctx->backend == OL_BACKEND_ONEDNN ? "oneDNN sgemm"
             : ctx->backend == OL_BACKEND_BLAS ? "OpenBLAS sgemm"
                                               : "reference",
             dnn, ol_openblas_corename(), bad ? " (generic fallback; set OPENBLAS_CORETYPE=" : "",
             bad ? suggest : "");
    if (bad) {
        size_t n = strlen(buf);
        if (n + 1 < cap)
            snprintf(buf + n, cap - n, ")");
    }
}

void ol__sgemm_ref(int transa, int transb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0.0;
            for (int64_t k = 0; k < K; k++) {
                float a = transa ? A[k * lda + i] : A[i * lda + k];
                float b = transb ? B[j * ldb + k] : B[k * ldb + j];
                acc += (double)a * (double)b;
            }
            float prev = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
            C[i * ldc + j] = (float)(alpha * acc) + prev;
        }
}

void ol__sgemm(const ol_ctx *ctx, int transa, int transb, int64_t M, int64_t N, int64_t K, float alpha,
               const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (M == 0 || N == 0)
        return;
    switch (ctx->backend) {
#ifdef OL_HAVE_ONEDNN
    case OL_BACKEND_ONEDNN:
        if (dnnl_sgemm(transa ? 'T' : 'N', transb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) ==
            dnnl_success)
            return;
        break; /* falls back below; only fails on invalid shapes */
#endif
    case OL_BACKEND_BLAS:
        cblas_sgemm(CblasRowMajor, transa ? CblasTrans : CblasNoTrans, transb ? CblasTrans : CblasNoTrans, (int)M,
                    (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
        return;
    default:
        break;
    }
    ol__sgemm_ref(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
