/* Internal helpers shared by the library's modules (symbols prefixed ol__). */
#ifndef OL_CORE_INTERNAL_H
#define OL_CORE_INTERNAL_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "optimlab/core.h"
#include "optimlab/params.h"

struct ol_ctx {
    int threads;
    ol_backend backend;
    int errcode;
    char errmsg[1024];
    void *dnnl_engine; /* dnnl_engine_t, NULL without oneDNN */
    void *dnnl_stream; /* dnnl_stream_t */
    struct ol__registry *reg; /* registered optimizers, schedules and plugins (NULL: none) */
    uint64_t mem_limit;       /* ol_ctx_set_memory_limit: 0 = available memory */
};

/* Frees the registry and closes its plugins (src/optim/registry.c). */
void ol__registry_free(struct ol__registry *r);
/* The schedules registered in ctx (ctx may be NULL), stored with the registry;
 * add copies the descriptor (OL_ENOMEM). The API is src/sched/registry.c. */
struct ol_sched_algo;
int ol__registry_sched_count(const ol_ctx *ctx);
const struct ol_sched_algo *ol__registry_sched_at(const ol_ctx *ctx, int i);
int ol__registry_sched_add(ol_ctx *ctx, const struct ol_sched_algo *a);
/* An algorithm, alias or parameter name: [a-z0-9._-], shorter than OL_OPTIM_NAME_MAX. */
int ol__valid_algo_name(const char *s);

#if defined(__GNUC__)
#define OL__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define OL__PRINTF(a, b)
#endif

/* Record an error on ctx and return code (negative), so callers can write
 * `return ol__err(ctx, OL_EINVAL, "batch size must be > 0, got %d", n);` */
int ol__err(ol_ctx *ctx, int code, const char *fmt, ...) OL__PRINTF(3, 4);

/* 64-byte aligned allocation, zero-filled; NULL on failure. Free with ol__free. */
void *ol__alloc(size_t bytes);
void ol__free(void *p);

#define OL__ALIGN_FLOATS 16 /* tensor offsets in flat buffers: 64 bytes */
#define OL__PI 3.14159265358979323846
static inline size_t ol__align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* The final sizes of a parameter set's buffers (padding included), without
 * allocating them: what ol_paramset_finalize then allocates. */
void ol__paramset_layout(ol_paramset *ps);

/* Monotonic time in seconds. */
double ol__now(void);

/* Propagate negative status codes. */
#define OL__TRY(expr)              \
    do {                           \
        int ol__rc_ = (expr);      \
        if (ol__rc_ < 0)           \
            return ol__rc_;        \
    } while (0)

#endif
