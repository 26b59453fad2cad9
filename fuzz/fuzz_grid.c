/* libFuzzer target: grid files of optimlab sweep (YAML: fixed, grid, runs, lr-find), parsed,
 * expanded and named. */
#include <stdint.h>
#include <stdio.h>

#include "sweep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fmemopen((void *)data, size ? size : 1, "rb");
    if (!f)
        return 0;
    sweep_grid g;
    char err[2048];
    if (sweep_grid_load_stream(f, "fuzz.yaml", &g, err, sizeof err) == 0)
        sweep_grid_free(&g);
    fclose(f);
    return 0;
}
