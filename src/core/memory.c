/* How much memory a run may still take: /proc/meminfo's MemAvailable, lowered
 * by the process's cgroup limit (v2 memory.max, v1 memory.limit_in_bytes)
 * minus what the cgroup already uses. Used to refuse a run (or a data file)
 * whose declared or estimated size cannot fit, before anything is allocated:
 * a refusal in a second beats the OOM killer after minutes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

/* The first number in a small file; 0 when absent or "max". */
static int read_u64(const char *path, uint64_t *out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char buf[64] = "";
    int ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    if (!ok || strncmp(buf, "max", 3) == 0)
        return 0;
    char *end;
    unsigned long long v = strtoull(buf, &end, 10);
    if (end == buf)
        return 0;
    *out = (uint64_t)v;
    return 1;
}

/* limit - usage of one cgroup directory (v2 or v1 file names); 0 when none. */
static int cgroup_room(const char *dir, int v2, uint64_t *room)
{
    char lp[600], up[600];
    snprintf(lp, sizeof lp, "%s/%s", dir, v2 ? "memory.max" : "memory.limit_in_bytes");
    snprintf(up, sizeof up, "%s/%s", dir, v2 ? "memory.current" : "memory.usage_in_bytes");
    uint64_t limit = 0, used = 0;
    if (!read_u64(lp, &limit) || limit >= ((uint64_t)1 << 60)) /* v1 writes "no limit" as ~2^63 */
        return 0;
    read_u64(up, &used);
    *room = limit > used ? limit - used : 0;
    return 1;
}

/* The tightest room of the process's own cgroup (as /proc/self/cgroup names
 * it, or the mount's root inside a container). */
static int cgroup_available(uint64_t *room)
{
    int found = 0;
    uint64_t best = UINT64_MAX;
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        const int v2 = strcmp(c1 + 1, "") == 0, v1 = strstr(c1 + 1, "memory") != NULL;
        if (!v2 && !v1)
            continue;
        char dir[600];
        uint64_t r;
        snprintf(dir, sizeof dir, "/sys/fs/cgroup%s%.500s", v2 ? "" : "/memory", c2 + 1);
        if (cgroup_room(dir, v2, &r) && r < best) {
            best = r;
            found = 1;
        }
    }
    if (f)
        fclose(f);
    const char *roots[2] = {"/sys/fs/cgroup", "/sys/fs/cgroup/memory"};
    for (int i = 0; i < 2; i++) {
        uint64_t r;
        if (cgroup_room(roots[i], i == 0, &r) && r < best) {
            best = r;
            found = 1;
        }
    }
    *room = best;
    return found;
}

int ol_memory_available(uint64_t *bytes)
{
    *bytes = UINT64_MAX;
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    int found = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
            *bytes = (uint64_t)kb * 1024u;
            found = 1;
            break;
        }
    }
    if (f)
        fclose(f);
    uint64_t room;
    if (cgroup_available(&room)) {
        found = 1;
        if (room < *bytes)
            *bytes = room;
    }
    return found ? OL_OK : OL_ENOTSUP;
}

void ol_ctx_set_memory_limit(ol_ctx *ctx, uint64_t bytes) { ctx->mem_limit = bytes; }

int ol_ctx_memory_limit(const ol_ctx *ctx, uint64_t *bytes)
{
    if (ctx->mem_limit) {
        *bytes = ctx->mem_limit;
        return OL_OK;
    }
    return ol_memory_available(bytes);
}

int ol_ctx_check_memory(ol_ctx *ctx, uint64_t bytes, const char *what)
{
    uint64_t limit;
    if (ol_ctx_memory_limit(ctx, &limit) < 0 || bytes <= limit)
        return OL_OK;
    return ol__err(ctx, OL_ENOMEM, "%s: about %.3g GB needed, more than the %.3g GB of memory %s", what,
                   (double)bytes / 1e9, (double)limit / 1e9, ctx->mem_limit ? "allowed" : "available");
}
