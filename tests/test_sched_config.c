/* Config files (YAML), recipes and their precedence against the command line:
 * defaults < recipe < config file < flags. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "testutil.h"

static const cli_opt *const train_tables[] = {cli_model_opts, cli_data_opts, cli_optim_opts, cli_sched_opts,
                                              cli_batch_opts, cli_train_opts, cli_run_opts,  cli_config_opts,
                                              NULL};

/* A run of `epochs` epochs of 100 batches of `batch` samples (n = 100 x batch). */
static ol_train_params run_of(long long batch, int epochs)
{
    ol_train_params tp = ol_train_default_params();
    tp.batch_size = (int)batch;
    tp.epochs = epochs;
    return tp;
}

static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/optimlab_cfg_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) {
        free(path);
        return NULL;
    }
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    close(fd);
    if (w != (ssize_t)len) {
        unlink(path);
        free(path);
        return NULL;
    }
    return path;
}

/* Presets then argv (argv[0..1] = "optimlab train"). */
static int run(cli_values *v, int argc, char **argv)
{
    int help = 0;
    cli_init(v, train_tables);
    if (cli_apply_presets(v, argc, argv, 2) != 0)
        return -1;
    return cli_parse(v, argc, argv, 2, &help);
}

static void test_yaml_and_overrides(void)
{
    char *f = write_tmp("# a run\n"
                        "lr: 0.05\n"
                        "schedule: multistep\n"
                        "milestones: [10, 20.5]\n"
                        "nesterov: true\n"
                        "gamma: '0.2'\n"
                        "batch-milestones: 3,6\n"
                        "eta-min:\n");
    ASSERT_TRUE(f != NULL);
    cli_values v;
    char *argv[] = {"optimlab", "train", "--config", f, "--gamma", "0.5", NULL};
    ASSERT_EQ_INT(run(&v, 6, argv), 0);
    ASSERT_TRUE(!strcmp(cli_str(&v, "lr"), "0.05"));
    ASSERT_TRUE(!strcmp(cli_str(&v, "milestones"), "10,20.5")); /* a YAML list */
    ASSERT_TRUE(!strcmp(cli_str(&v, "batch-milestones"), "3,6")); /* a comma string */
    ASSERT_TRUE(cli_flag(&v, "nesterov"));
    ASSERT_TRUE(!strcmp(cli_str(&v, "gamma"), "0.5")); /* the flag wins */
    ASSERT_TRUE(!strcmp(cli_str(&v, "eta-min"), "0")); /* null: the default */
    ASSERT_EQ_INT(v.set[cli_find(&v, "lr")], 2);
    ASSERT_EQ_INT(v.set[cli_find(&v, "gamma")], 1);
    ASSERT_TRUE(!strcmp(cli_str(&v, "config"), f)); /* recorded in config.json */
    ol_sched_params sp;
    ASSERT_EQ_INT(cli_build_sched(&v, 0.05, 10, 300, &sp), 0);
    ASSERT_EQ_INT(sp.nmilestones, 2);
    ASSERT_EQ_INT(sp.milestones[1], 205);
    cli_free_sched(&sp);
    cli_free(&v);
    /* --config=FILE form */
    char opt[600];
    snprintf(opt, sizeof opt, "--config=%s", f);
    char *argv2[] = {"optimlab", "train", opt, NULL};
    ASSERT_EQ_INT(run(&v, 3, argv2), 0);
    ASSERT_TRUE(!strcmp(cli_str(&v, "schedule"), "multistep"));
    cli_free(&v);
    unlink(f);
    free(f);
}

static void expect_error(const char *yaml, const char *needle, int line)
{
    char *f = write_tmp(yaml);
    ASSERT_TRUE(f != NULL);
    cli_values v;
    char *argv[] = {"optimlab", "train", "--config", f, NULL};
    ASSERT_EQ_INT(run(&v, 4, argv), -1);
    char where[600];
    snprintf(where, sizeof where, "%s:%d: ", f, line);
    if (!strstr(v.err, needle) || strncmp(v.err, where, strlen(where)) != 0 || strchr(v.err, '\n'))
        TU_FAIL("error '%s' should start with '%s' and mention '%s'", v.err, where, needle);
    /* nothing applied from a rejected file */
    ASSERT_TRUE(!strcmp(cli_str(&v, "lr"), ""));
    cli_free(&v);
    unlink(f);
    free(f);
}

static void test_errors(void)
{
    expect_error("lr: 0.1\nwarmup-epoch: 5\n", "unknown key 'warmup-epoch'", 2);
    expect_error("lr: 0.1\nschedule: [cosine\n", "", 3);  /* YAML syntax error: the line of the problem */
    expect_error("lr: 0.1\nnesterov: maybe\n", "is a flag", 2);
    expect_error("lr: 0.1\noptimizer:\n  name: sgd\n", "must be a scalar or a list", 3);
    expect_error("lr: 0.1\nlr: 0.2\n", "duplicate key 'lr'", 2);
    expect_error("- lr\n- 0.1\n", "expected a mapping", 1);
    expect_error("lr: 0.1\nconfig: other.yaml\n", "unknown key 'config'", 2);
    cli_values v;
    char *argv[] = {"optimlab", "train", "--config", "/nonexistent/x.yaml", NULL};
    ASSERT_EQ_INT(run(&v, 4, argv), -1);
    ASSERT_TRUE(strstr(v.err, "/nonexistent/x.yaml") != NULL);
    cli_free(&v);
    char *argv2[] = {"optimlab", "train", "--recipe", "fast", NULL};
    ASSERT_EQ_INT(run(&v, 4, argv2), -1);
    ASSERT_TRUE(strstr(v.err, "unknown recipe 'fast'") != NULL);
    cli_free(&v);
}

static void test_recipe_order(void)
{
    /* recipe < config < flags */
    char *f = write_tmp("momentum: 0.8\nwarmup-epochs: 2\n");
    cli_values v;
    char *argv[] = {"optimlab", "train", "--recipe", "goyal", "--config", f, "--lr", "0.5", NULL};
    ASSERT_EQ_INT(run(&v, 8, argv), 0);
    ASSERT_TRUE(!strcmp(cli_str(&v, "lr"), "0.5"));
    ASSERT_TRUE(!strcmp(cli_str(&v, "momentum"), "0.8"));
    ASSERT_TRUE(!strcmp(cli_str(&v, "warmup-epochs"), "2"));
    ASSERT_TRUE(!strcmp(cli_str(&v, "weight-decay"), "1e-4"));
    ASSERT_TRUE(!strcmp(cli_str(&v, "lr-scaling"), "linear"));
    ASSERT_EQ_INT(v.set[cli_find(&v, "weight-decay")], 3);
    /* the effective configuration is what gets saved */
    char *out = write_tmp("");
    FILE *jf = fopen(out, "w");
    ASSERT_TRUE(jf && cli_write_json(&v, jf) == 0);
    if (jf)
        fclose(jf);
    jf = fopen(out, "r");
    char buf[16384] = "";
    size_t got = jf ? fread(buf, 1, sizeof buf - 1, jf) : 0;
    buf[got] = '\0';
    if (jf)
        fclose(jf);
    ASSERT_TRUE(strstr(buf, "\"recipe\": \"goyal\"") && strstr(buf, "\"momentum\": \"0.8\"") &&
                strstr(buf, "\"lr\": \"0.5\"") && strstr(buf, "\"lr-scaling\": \"linear\""));
    unlink(out);
    free(out);
    cli_free(&v);
    unlink(f);
    free(f);

    /* a recipe named in the file; the command line's --recipe replaces it */
    f = write_tmp("recipe: superconvergence\nmomentum: 0.7\n");
    char *argv2[] = {"optimlab", "train", "--config", f, NULL};
    ASSERT_EQ_INT(run(&v, 4, argv2), 0);
    ASSERT_TRUE(!strcmp(cli_str(&v, "schedule"), "onecycle"));
    ASSERT_TRUE(!strcmp(cli_str(&v, "momentum"), "0.7"));
    cli_free(&v);
    char *argv3[] = {"optimlab", "train", "--config", f, "--recipe", "goyal", NULL};
    ASSERT_EQ_INT(run(&v, 6, argv3), 0);
    ASSERT_TRUE(!strcmp(cli_str(&v, "schedule"), "multistep"));
    ASSERT_TRUE(!strcmp(cli_str(&v, "recipe"), "goyal"));
    cli_free(&v);
    unlink(f);
    free(f);
}

static void test_recipes_valid(void)
{
    cli_values v;
    cli_init(&v, train_tables);
    for (int r = 0; r < cli_recipe_count(); r++)
        for (const char *const *kv = cli_recipe_values(r); *kv; kv += 2)
            if (cli_find(&v, kv[0]) < 0)
                TU_FAIL("recipe %s sets --%s, which train does not have", cli_recipe_name(r), kv[0]);
    cli_free(&v);
    char err[256];
    for (int r = 0; r < cli_recipe_count(); r++)
        if (cli_recipe_check(r, err, sizeof err) != 0)
            TU_FAIL("%s", err);
    /* each recipe gives a valid schedule and batch configuration */
    for (int r = 0; r < cli_recipe_count(); r++) {
        cli_init(&v, train_tables);
        ASSERT_EQ_INT(cli_apply_recipe(&v, cli_recipe_name(r)), 0);
        long long b = 0;
        ASSERT_EQ_INT(cli_int(&v, "batch-size", 1, 1 << 20, &b), 0);
        cli_batch_config bc;
        ol_sched_params sp;
        ol_train_params tp = run_of(b, 30);
        int ok = cli_build_batch_sched(&v, &tp, 100 * b, &bc) == 0;
        if (ok && bc.sched.type != OL_BATCH_CONSTANT)
            tp.batch_sched = &bc.sched;
        ok = ok && cli_build_sched_run(&v, 0.1, &tp, 100 * b, ol_train_count_steps(&tp, 100 * b), &sp) == 0;
        if (!ok)
            TU_FAIL("recipe %s: %s", cli_recipe_name(r), v.err);
        else
            cli_free_sched(&sp);
        cli_free(&v);
    }
    /* goyal: warm-up from the unscaled lr, i.e. 1/k with k = B/B0 */
    cli_init(&v, train_tables);
    cli_apply_recipe(&v, "goyal");
    cli_set(&v, "batch-size", "1024", 1);
    ol_sched_params sp;
    ASSERT_EQ_INT(cli_build_sched(&v, 0.1, 100, 3000, &sp), 0);
    ASSERT_NEAR(sp.warmup_start_factor, 0.25, 1e-15);
    ASSERT_EQ_INT(sp.warmup_steps, 167); /* 5 of 90 epochs (0.0556) of 3000 steps */
    cli_free(&v);
    /* bloom: the ramp 16 -> 2048 */
    cli_init(&v, train_tables);
    cli_apply_recipe(&v, "bloom");
    cli_batch_config bc;
    ol_train_params tp = run_of(16, 5);
    ASSERT_EQ_INT(cli_build_batch_sched(&v, &tp, 1600, &bc), 0);
    ASSERT_EQ_INT(bc.sched.type, OL_BATCH_RAMP);
    ASSERT_EQ_INT(bc.sched.ramp_samples, 355); /* 4.44% (BLOOM's 20B of 450B tokens) of 5 x 1600 samples */
    ASSERT_EQ_INT(ol_batch_sched_batch(&bc.sched, 0, 0), 16);
    ASSERT_EQ_INT(ol_batch_sched_batch(&bc.sched, 0, 354) < 2048, 1);
    ASSERT_EQ_INT(ol_batch_sched_batch(&bc.sched, 0, 355), 2048);
    /* betas 0.9, 0.95 and the deck's peak lr reach the optimizer */
    ol_optim_params op;
    ASSERT_EQ_INT(cli_build_optim(&v, &op), 0);
    ASSERT_NEAR(op.lr, 6e-5, 1e-18);
    ASSERT_NEAR(op.beta2, 0.95, 1e-15);
    cli_free(&v);
}

static void test_cli_builders(void)
{
    cli_values v;
    cli_init(&v, train_tables);
    ol_sched_params sp;
    /* cyclic step size as x epochs: 2 <= x <= 10 */
    cli_set(&v, "schedule", "cyclic", 1);
    cli_set(&v, "max-lr", "1", 1);
    cli_set(&v, "cycle-epochs", "12", 1);
    ASSERT_EQ_INT(cli_build_sched(&v, 0.1, 50, 5000, &sp), -1);
    ASSERT_TRUE(strstr(v.err, "--cycle-epochs") != NULL);
    cli_set(&v, "cycle-epochs", "2.5", 1);
    ASSERT_EQ_INT(cli_build_sched(&v, 0.1, 50, 5000, &sp), 0);
    ASSERT_EQ_INT(sp.step_size_up, 125);
    /* sequential parts (the cyclic options above do not apply to them) */
    cli_set(&v, "max-lr", "", 0);
    cli_set(&v, "cycle-epochs", "", 0);
    cli_set(&v, "schedule", "sequential", 1);
    cli_set(&v, "sequence", "constant; step step-size=1 gamma=0.5", 1);
    cli_set(&v, "sequence-milestones", "2", 1);
    ASSERT_EQ_INT(cli_build_sched(&v, 0.1, 10, 100, &sp), 0);
    ASSERT_NEAR(ol_sched_lr(&sp, 19), 0.1, 1e-15);
    ASSERT_NEAR(ol_sched_lr(&sp, 30), 0.05, 1e-15);
    cli_free_sched(&sp);
    cli_set(&v, "sequence", "constant; step bogus=1", 1);
    ASSERT_EQ_INT(cli_build_sched(&v, 0.1, 10, 100, &sp), -1);
    ASSERT_TRUE(strstr(v.err, "bogus") != NULL);
    cli_set(&v, "sequence", "constant; cosine", 1);
    cli_set(&v, "sequence-milestones", "", 1);
    ASSERT_EQ_INT(cli_build_sched(&v, 0.1, 10, 100, &sp), -1);
    /* batch options */
    cli_batch_config bc;
    cli_set(&v, "batch-schedule", "milestones", 1);
    ol_train_params tp = run_of(128, 10);
    tp.batch_size = 128;
    ASSERT_EQ_INT(cli_build_batch_sched(&v, &tp, 1280, &bc), -1); /* needs milestones */
    cli_set(&v, "batch-milestones", "3,6", 1);
    cli_set(&v, "batch-factor", "5", 1);
    cli_set(&v, "micro-batch-size", "32", 1);
    cli_set(&v, "lr-scaling", "sqrt", 1);
    cli_set(&v, "base-batch-size", "32", 1);
    ASSERT_EQ_INT(cli_build_batch_sched(&v, &tp, 1280, &bc), 0);
    /* epochs of 10 steps at 128, then 2 steps at 640: epoch 6 starts at step 30 + 3 x 2 */
    ASSERT_EQ_INT(bc.sched.milestones[0], 30);
    ASSERT_EQ_INT(bc.sched.milestones[1], 36);
    ASSERT_EQ_INT(bc.micro_batch, 32);
    ASSERT_NEAR(ol_lr_scale(bc.lr_scaling, 128.0, (double)bc.base_batch, bc.knee), 2.0, 1e-15);
    ASSERT_EQ_INT(ol_batch_sched_batch(&bc.sched, 30, 0), 640);
    cli_set(&v, "lr-scaling", "cube", 1);
    ASSERT_EQ_INT(cli_build_batch_sched(&v, &tp, 1280, &bc), -1);
    cli_free(&v);
}

int main(void)
{
    test_yaml_and_overrides();
    test_errors();
    test_recipe_order();
    test_recipes_valid();
    test_cli_builders();
    return tu_finish("sched_config");
}
