/* libFuzzer target: YAML config files, applied to the train command's options. */
#include <stdint.h>
#include <stdio.h>

#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fmemopen((void *)data, size ? size : 1, "rb");
    if (!f)
        return 0;
    const cli_opt *const tables[] = {cli_model_opts, cli_data_opts, cli_optim_opts, cli_sched_opts, cli_batch_opts,
                                     cli_train_opts, cli_run_opts,  cli_config_opts, NULL};
    cli_values v;
    cli_init(&v, tables);
    char recipe[64];
    cli_load_config_stream(&v, f, "fuzz.yaml", recipe, sizeof recipe);
    fclose(f);
    cli_free(&v);
    return 0;
}
