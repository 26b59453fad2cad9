/* optimlab core: status codes, the library context, version.
 *
 * Every library function that can fail returns an int: 0 (OL_OK) on success or a
 * negative OL_E* code. The context keeps a one-line message with the detail (file
 * name, expected vs got); read it with ol_ctx_errmsg(). The library never prints
 * to stdout and never exits. */
#ifndef OPTIMLAB_CORE_H
#define OPTIMLAB_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OL_VERSION_STRING "0.1.0"

/* X(name, text): the one list of error codes. */
#define OL_ERRNO_MAP(X)                                        \
    X(EINVAL, "invalid argument")                              \
    X(ENOMEM, "out of memory")                                 \
    X(EIO, "input/output error")                               \
    X(ENOENT, "no such file or directory")                     \
    X(EFORMAT, "corrupt or unsupported file format")           \
    X(ESHAPE, "shape mismatch")                                \
    X(ENOTSUP, "not supported")                                \
    X(ENAME, "unknown name")                                   \
    X(ERANGE, "value out of range")                            \
    X(EBACKEND, "compute backend failure")                     \
    X(ENONFINITE, "non-finite value")                          \
    X(EINTR, "interrupted")                                    \
    X(ESTATE, "invalid state")

typedef enum {
    OL_OK = 0,
#define OL__ERR_ENUM(name, text) OL_##name,
    OL__ERR_FIRST = -1000,
    OL_ERRNO_MAP(OL__ERR_ENUM)
#undef OL__ERR_ENUM
    OL__ERR_END
} ol_status;

/* Human-readable text of a status code ("unknown error" for others). */
const char *ol_strerror(int status);

/* Compute backend for convolutions and matrix products. REF is the portable
 * plain-C reference every other backend is checked against. */
typedef enum {
    OL_BACKEND_AUTO = 0, /* oneDNN when built with it, else BLAS/reference */
    OL_BACKEND_REF,      /* plain C loops: slow, the reference */
    OL_BACKEND_BLAS,     /* OpenBLAS sgemm (+ reference convolution)*/
    OL_BACKEND_ONEDNN,   /* oneDNN convolutions and sgemm */
    OL_BACKEND_COUNT
} ol_backend;

typedef struct ol_ctx ol_ctx;

/* Create a context. threads > 0 sets the process's OpenMP (and OpenBLAS)
 * thread count; threads <= 0 leaves it as it is. Returns NULL only when memory
 * is exhausted. */
ol_ctx *ol_ctx_new(int threads);
void ol_ctx_free(ol_ctx *ctx); /* NULL-safe */

/* The message of the most recent error ("" when none). Owned by ctx. */
const char *ol_ctx_errmsg(const ol_ctx *ctx);
void ol_ctx_clear_error(ol_ctx *ctx);
/* Record an error from outside the library (so it can travel with ol_comm_agree). */
void ol_ctx_set_error(ol_ctx *ctx, int code, const char *msg);
int ol_ctx_threads(const ol_ctx *ctx);
int ol_ctx_set_threads(ol_ctx *ctx, int threads);
int ol_ctx_set_backend(ol_ctx *ctx, ol_backend backend);
ol_backend ol_ctx_backend(const ol_ctx *ctx); /* never AUTO: the resolved one */
const char *ol_backend_name(ol_backend b);
int ol_backend_from_name(const char *name, ol_backend *out);

/* Monotonic clock in seconds. */
double ol_now(void);

/* Copy src into dst (cap bytes, always NUL-terminated) with every byte that
 * is not printable UTF-8 text (control characters, invalid or overlong
 * sequences) written as \xNN: error messages quote names from corrupt files
 * and pass them through this (ol_ctx_errmsg is always escaped). */
void ol_text_escape(const char *src, char *dst, size_t cap);

/* Memory this process may still allocate, in bytes: /proc/meminfo's
 * MemAvailable, lowered by its cgroup's limit minus the cgroup's usage (v2
 * memory.max, v1 memory.limit_in_bytes). OL_ENOTSUP (*bytes = UINT64_MAX)
 * where neither is known. */
int ol_memory_available(uint64_t *bytes);
/* The budget that size checks compare with (readers' declared sizes, model
 * and training estimates): 0 (the default) = ol_memory_available() at the time
 * of each check, UINT64_MAX = no limit, anything else = that many bytes. */
void ol_ctx_set_memory_limit(ol_ctx *ctx, uint64_t bytes);
int ol_ctx_memory_limit(const ol_ctx *ctx, uint64_t *bytes);
/* OL_OK when `bytes` fit the budget, else OL_ENOMEM with the one-line message
 * "<what>: about X GB needed, more than the Y GB of memory available". */
int ol_ctx_check_memory(ol_ctx *ctx, uint64_t bytes, const char *what);

/* A line describing the compute kernels in use: oneDNN version and ISA, the
 * OpenBLAS core. Written into buf (always NUL-terminated). */
void ol_ctx_kernel_info(const ol_ctx *ctx, char *buf, size_t cap);
/* OpenBLAS's name for the kernel it selected ("SkylakeX", "Prescott", ...). */
const char *ol_openblas_corename(void);
/* 1 when OpenBLAS fell back to a generic kernel although the CPU has AVX2/AVX-512;
 * *suggest receives the OPENBLAS_CORETYPE value that fixes it. */
int ol_openblas_misdetected(const char **suggest);

#ifdef __cplusplus
}
#endif
#endif
