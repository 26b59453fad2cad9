/* Recipes: named presets of optimizer, schedule and batch options from the
 * papers of the course. A recipe is applied before the config file and the
 * command line, so any of its values can be overridden. Every key is an
 * option of some command (an unknown key is an error, found by the tests);
 * a key the current command does not have (e.g. --epochs for optimlab
 * schedule) is skipped there. Lengths are fractions of the run, so a recipe
 * fits any number of epochs or steps. */
#include <string.h>

#include "common.h"

typedef struct {
    const char *name;
    const char *summary;
    const char *const *kv; /* key, value, ..., NULL; a flag's value is "1" */
} recipe;

/* BLOOM (BigScience 2022), as the course deck gives it: AdamW (0.9, 0.95),
 * eps 1e-8, wd 0.1, peak lr 6e-5, linear warm-up, cosine to 10% of the peak,
 * global batch ramped linearly from 1/128 of its final size (16 -> 2048
 * sequences in steps of 16). BLOOM's lengths are fractions of its 450B
 * tokens, so the recipe scales to any run as the same fractions of the run's
 * samples (tokens for a language model): warm-up 375M (0.083%), batch ramp 20B
 * (4.44%), cosine until 410B (91.1%, warm-up included) and flat at the floor
 * after it (Megatron-LM's cosine). */
static const char *const bloom_kv[] = {
    "optimizer", "adamw", "lr", "6e-5", "betas", "0.9,0.95", "eps", "1e-8", "weight-decay", "0.1",
    "clip-grad-norm", "1.0", "schedule", "cosine", "min-lr-ratio", "0.1", "hold-floor", "1",
    "warmup-samples-ratio", "0.000833", "decay-samples-ratio", "0.911", "batch-schedule", "ramp", "batch-size", "16",
    "max-batch-size", "2048", "batch-ramp-increment", "16", "batch-ramp-ratio", "0.0444", NULL};

/* Goyal et al. 2017: SGD momentum 0.9, wd 1e-4, lr 0.1 per 256 samples scaled
 * linearly with the batch, gradual warm-up from the unscaled lr over 5 of 90
 * epochs, step decay by 10x (at 50% and 75% of training here). */
static const char *const goyal_kv[] = {
    "optimizer", "sgd", "lr", "0.1", "momentum", "0.9", "weight-decay", "1e-4", "lr-scaling", "linear",
    "base-batch-size", "256", "warmup-ratio", "0.0556", "warmup-start-factor", "auto", "schedule", "multistep",
    "gamma", "0.1", "no-decay-on", "bias,norm", NULL};

/* Smith & Topin 2018 (super-convergence): one cycle of a large lr with
 * momentum cycled inversely (0.95 -> 0.85), linear phases and a final
 * annihilation, small weight decay. Pair with optimlab lr-find for --lr. */
static const char *const superconvergence_kv[] = {
    "optimizer", "sgd", "lr", "1.0", "momentum", "0.9", "weight-decay", "1e-4", "schedule", "onecycle",
    "anneal", "linear", "three-phase", "1", "pct-start", "0.45", "div-factor", "10", "final-div-factor", "100",
    "base-momentum", "0.85", "max-momentum", "0.95", NULL};

/* You et al. 2020 (LAMB): large batch, square-root lr scaling, linear
 * warm-up then polynomial (linear) decay, decoupled weight decay 0.01. The
 * warm-up is 0.4 of the run: the 2 of the default 5 epochs the recipe had. */
static const char *const lamb_kv[] = {
    "optimizer", "lamb", "lr", "2e-3", "weight-decay", "0.01", "batch-size", "4096", "lr-scaling", "sqrt",
    "base-batch-size", "256", "warmup-ratio", "0.4", "schedule", "polynomial", "power", "1", NULL};

/* You et al. 2017 (LARS): large batch, linear lr scaling, warm-up over 5 of
 * 90 epochs, polynomial decay with power 2, momentum 0.9. */
static const char *const lars_kv[] = {
    "optimizer", "lars", "lr", "0.1", "momentum", "0.9", "weight-decay", "5e-4", "batch-size", "4096",
    "lr-scaling", "linear", "base-batch-size", "256", "warmup-ratio", "0.0556", "schedule", "polynomial",
    "power", "2", NULL};

static const recipe recipes[] = {
    {"bloom", "AdamW (0.9, 0.95), wd 0.1, warm-up 0.083%, cosine to 10% at 91.1%, batch ramp 16 -> 2048 over 4.44% "
              "of the run's samples (BLOOM's tokens)", bloom_kv},
    {"goyal", "SGD momentum, linear lr scaling, gradual warm-up over 5 of 90 epochs (Goyal et al. 2017)", goyal_kv},
    {"superconvergence", "one-cycle with inverse momentum cycling (Smith & Topin 2018)", superconvergence_kv},
    {"lamb-large-batch", "LAMB, batch 4096, sqrt lr scaling, warm-up + linear decay (You et al. 2020)", lamb_kv},
    {"lars-large-batch", "LARS, batch 4096, linear lr scaling, warm-up + poly(2) decay (You et al. 2017)", lars_kv},
};

#define NRECIPES ((int)(sizeof recipes / sizeof recipes[0]))

int cli_recipe_count(void) { return NRECIPES; }
const char *cli_recipe_name(int i) { return i >= 0 && i < NRECIPES ? recipes[i].name : NULL; }
const char *const *cli_recipe_values(int i) { return i >= 0 && i < NRECIPES ? recipes[i].kv : NULL; }

/* The options a recipe may set: those every training command shares (the
 * command-specific ones, like lr-find's or schedule's, are no recipe's). */
static void recipe_options(cli_values *all)
{
    const cli_opt *const tables[] = {cli_model_opts, cli_data_opts, cli_optim_opts, cli_sched_opts, cli_batch_opts,
                                     cli_train_opts, cli_run_opts,  cli_dist_opts,  NULL};
    cli_init(all, tables);
}

int cli_recipe_check(int i, char *err, size_t cap)
{
    if (i < 0 || i >= NRECIPES) {
        snprintf(err, cap, "no recipe %d", i);
        return -1;
    }
    cli_values all;
    recipe_options(&all);
    int rc = 0;
    for (const char *const *kv = recipes[i].kv; *kv && rc == 0; kv += 2) {
        int k = cli_find(&all, kv[0]);
        if (k < 0) {
            snprintf(err, cap, "recipe '%s': unknown option '%s'", recipes[i].name, kv[0]);
            rc = -1;
        } else if (all.opts[k]->kind == CLI_FLAG && strcmp(kv[1], "1") != 0) {
            snprintf(err, cap, "recipe '%s': flag --%s can only be set (\"1\"), got '%s'", recipes[i].name, kv[0],
                     kv[1]);
            rc = -1;
        }
    }
    cli_free(&all);
    return rc;
}

int cli_apply_recipe(cli_values *v, const char *name)
{
    for (int r = 0; r < NRECIPES; r++) {
        if (strcmp(recipes[r].name, name) != 0)
            continue;
        if (cli_recipe_check(r, v->err, sizeof v->err) < 0)
            return -1;
        for (const char *const *kv = recipes[r].kv; *kv; kv += 2)
            if (cli_find(v, kv[0]) >= 0 && cli_set(v, kv[0], kv[1], 3) < 0) {
                snprintf(v->err, sizeof v->err, "out of memory");
                return -1;
            }
        return 0;
    }
    char all[256] = "";
    for (int r = 0; r < NRECIPES; r++)
        snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", r ? ", " : "", recipes[r].name);
    snprintf(v->err, sizeof v->err, "--recipe: unknown recipe '%s' (%s)", name, all);
    return -1;
}

/* The recipe as flags `optimlab train` takes: a flag without a value. */
int cmd_recipes(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("usage: optimlab <train|schedule|lr-find> --recipe NAME [options that override it]\n\n");
    cli_values all;
    recipe_options(&all);
    for (int r = 0; r < NRECIPES; r++) {
        char err[256];
        if (cli_recipe_check(r, err, sizeof err) < 0) {
            cli_free(&all);
            return cli_fail(OL_EXIT_FAIL, err);
        }
        printf("%s: %s\n ", recipes[r].name, recipes[r].summary);
        for (const char *const *kv = recipes[r].kv; *kv; kv += 2) {
            if (all.opts[cli_find(&all, kv[0])]->kind == CLI_FLAG)
                printf(" --%s", kv[0]);
            else
                printf(" --%s %s", kv[0], kv[1]);
        }
        printf("\n\n");
    }
    cli_free(&all);
    return OL_EXIT_OK;
}
