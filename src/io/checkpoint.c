/* Checkpoints and weight files on top of the safetensors reader/writer. */
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "io/io_internal.h"
#include "io/safetensors.h"
#include "optimlab/checkpoint.h"

#define FORMAT_NAME "optimlab-checkpoint"
/* Version 2: the CRC-32 in FILE_CRC_KEY covers the whole file, header included.
 * Version 1 (CRC of the tensor data only, key "crc32") still loads. */
#define FORMAT_VERSION "2"
#define FILE_CRC_KEY "file_crc32"

void ol_checkpoint_path(const char *dir, int64_t step, char *path, size_t cap)
{
    snprintf(path, cap, "%s/ckpt-%08" PRId64 ".safetensors", dir, step);
}

/* Canonical description of the architecture: equal strings <=> same tensors. */
static char *model_json(const ol_model *m)
{
    const ol_model_params *mp = ol_model_get_params(m);
    char arch[64];
    ol_model_params_name(mp, arch, sizeof arch);
    json_t *w = json_array();
    if (mp->arch == OL_ARCH_MLP)
        for (int i = 0; i < mp->nwidths; i++)
            json_array_append_new(w, json_integer(mp->widths[i]));
    char sc[2] = {mp->shortcut, 0};
    json_t *o = json_pack("{s:s, s:i, s:i, s:b, s:s, s:o, s:[i,i,i], s:i}", "arch", arch, "depth", mp->depth, "width",
                          mp->width, "no_skip", mp->no_skip, "shortcut", sc, "widths", w, "input", mp->in_c, mp->in_h,
                          mp->in_w, "classes", mp->num_classes);
    if (o && mp->arch == OL_ARCH_GPT) /* only for GPTs: other models' descriptions stay as they were */
        json_object_update_new(o, json_pack("{s:i, s:i, s:i, s:i}", "n_layer", mp->n_layer, "n_head", mp->n_head,
                                            "n_embd", mp->n_embd, "seq_len", mp->seq_len));
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    return s;
}

/* Every scalar of ol_train_state, once: I integers, R reals. */
#define TRAIN_STATE_FIELDS(I, R) \
    I(step) I(epoch) I(epoch_pos) I(batch_in_epoch) I(samples_seen) I(evals_done) R(ep_loss) \
    I(ep_correct) I(ep_seen) I(epochs_done) R(best_test_acc) R(best_epoch) R(final_test_acc) \
    R(final_test_loss) R(final_train_loss) R(final_train_acc) R(train_time) R(eval_time) R(elapsed) \
    I(metrics_bytes) I(bad_steps) I(consecutive_bad) I(loss_hist_pos)

static json_t *state_to_json(const ol_train_state *st)
{
    json_t *o = json_object();
    json_t *hist = json_array();
    for (int i = 0; i < st->loss_hist_n && i < 64; i++)
        json_array_append_new(hist, json_real(st->loss_hist[i]));
#define I(f) json_object_set_new(o, #f, json_integer((json_int_t)st->f));
#define R(f) json_object_set_new(o, #f, json_real(st->f));
    TRAIN_STATE_FIELDS(I, R)
#undef I
#undef R
    json_object_set_new(o, "seed", json_string("")); /* replaced below: u64 as text */
    char seed[32];
    snprintf(seed, sizeof seed, "%" PRIu64, st->seed);
    json_object_set_new(o, "seed", json_string(seed));
    json_object_set_new(o, "loss_hist", hist);
    json_object_set_new(o, "metrics_crc", json_integer((json_int_t)st->metrics_crc));
    if (isfinite(st->loss_min)) /* absent: none yet */
        json_object_set_new(o, "loss_min", json_real(st->loss_min));
    json_object_set_new(o, "plateau", json_pack("{s:f, s:f, s:i, s:i, s:I, s:i}", "lr", st->plateau.lr, "best",
                                                isfinite(st->plateau.best) ? st->plateau.best : 0.0, "num_bad",
                                                st->plateau.num_bad, "cooldown_left", st->plateau.cooldown_left,
                                                "evals", (json_int_t)st->plateau.evals, "reductions",
                                                st->plateau.reductions));
    json_object_set_new(o, "plateau_best_inf", json_integer(isfinite(st->plateau.best) ? 0 : st->plateau.best > 0 ? 1 : -1));
    json_object_set_new(o, "sane_step", json_integer((json_int_t)st->sane_step));
    json_object_set_new(o, "comm", json_pack("[f,f,f,f,f,f,f,f,f]", st->comm_ep_bytes, st->comm_ep_dense,
                                             st->comm_run_bytes, st->comm_run_dense, st->comm_ep_early,
                                             st->comm_ep_grad, st->comm_early, st->comm_grad, st->comm_total));
    return o;
}

static int state_from_json(ol_ctx *ctx, const char *label, json_t *o, ol_train_state *st)
{
    memset(st, 0, sizeof *st);
    if (!json_is_object(o))
        return ol__err(ctx, OL_EFORMAT, "%s: train_state is not an object", label);
#define I(f)                                                                                                        \
    do {                                                                                                            \
        json_t *v_ = json_object_get(o, #f);                                                                        \
        if (!json_is_integer(v_))                                                                                   \
            return ol__err(ctx, OL_EFORMAT, "%s: train_state.%s missing", label, #f);                               \
        st->f = json_integer_value(v_);                                                                             \
    } while (0);
#define R(f)                                                                                                        \
    do {                                                                                                            \
        json_t *v_ = json_object_get(o, #f);                                                                        \
        if (!json_is_number(v_))                                                                                    \
            return ol__err(ctx, OL_EFORMAT, "%s: train_state.%s missing", label, #f);                               \
        st->f = json_number_value(v_);                                                                              \
    } while (0);
    TRAIN_STATE_FIELDS(I, R)
#undef I
#undef R
    json_t *seed = json_object_get(o, "seed"), *hist = json_object_get(o, "loss_hist");
    if (!json_is_string(seed) || !json_is_array(hist) || json_array_size(hist) > 64)
        return ol__err(ctx, OL_EFORMAT, "%s: train_state is incomplete", label);
    st->seed = strtoull(json_string_value(seed), NULL, 10);
    st->loss_hist_n = (int)json_array_size(hist);
    for (int i = 0; i < st->loss_hist_n; i++)
        st->loss_hist[i] = json_number_value(json_array_get(hist, (size_t)i));
    /* added in format 2; older checkpoints: unknown */
    json_t *mc = json_object_get(o, "metrics_crc"), *lm = json_object_get(o, "loss_min");
    st->metrics_crc = json_is_integer(mc) ? json_integer_value(mc) : -1;
    st->loss_min = json_is_number(lm) ? json_number_value(lm) : INFINITY;
    json_t *pl = json_object_get(o, "plateau");
    json_int_t binf = json_integer_value(json_object_get(o, "plateau_best_inf"));
    if (!json_is_object(pl))
        return ol__err(ctx, OL_EFORMAT, "%s: train_state.plateau missing", label);
    st->plateau.lr = json_number_value(json_object_get(pl, "lr"));
    st->plateau.best = binf ? (binf > 0 ? INFINITY : -INFINITY) : json_number_value(json_object_get(pl, "best"));
    st->plateau.num_bad = (int)json_integer_value(json_object_get(pl, "num_bad"));
    st->plateau.cooldown_left = (int)json_integer_value(json_object_get(pl, "cooldown_left"));
    st->plateau.evals = json_integer_value(json_object_get(pl, "evals"));
    st->plateau.reductions = (int)json_integer_value(json_object_get(pl, "reductions"));
    /* added later in format 2: absent reads as none / no traffic */
    json_t *ss = json_object_get(o, "sane_step"), *cm = json_object_get(o, "comm");
    st->sane_step = json_is_integer(ss) ? json_integer_value(ss) : -1;
    double *comm[9] = {&st->comm_ep_bytes, &st->comm_ep_dense, &st->comm_run_bytes, &st->comm_run_dense,
                       &st->comm_ep_early, &st->comm_ep_grad, &st->comm_early, &st->comm_grad, &st->comm_total};
    if (cm && (!json_is_array(cm) || json_array_size(cm) != 9))
        return ol__err(ctx, OL_EFORMAT, "%s: train_state.comm is malformed", label);
    for (size_t i = 0; cm && i < 9; i++) {
        json_t *x = json_array_get(cm, i);
        if (!json_is_number(x) || !(json_number_value(x) >= 0))
            return ol__err(ctx, OL_EFORMAT, "%s: train_state.comm is malformed", label);
        *comm[i] = json_number_value(x);
    }
    if (st->step < 0 || st->epoch < 0 || st->epoch_pos < 0 || st->loss_hist_pos < 0 || st->loss_hist_pos >= 64)
        return ol__err(ctx, OL_EFORMAT, "%s: train_state has negative counters", label);
    return OL_OK;
}

/* Copies of params and optimizer slots, to undo an eval/train round trip exactly. */
typedef struct {
    float *params;
    float *slots[OL_OPTIM_MAX_SLOTS];
    double scalars[8];
    int nslots, nscalars;
} snapshot;

static int snap_take(ol_ctx *ctx, snapshot *s, const ol_paramset *ps, ol_optim *opt)
{
    memset(s, 0, sizeof *s);
    s->params = malloc(ps->numel * sizeof(float));
    if (!s->params)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    memcpy(s->params, ps->params, ps->numel * sizeof(float));
    s->nslots = ol_optim_num_slots(opt);
    for (int i = 0; i < s->nslots; i++) {
        s->slots[i] = malloc(ps->numel * sizeof(float));
        if (!s->slots[i])
            return ol__err(ctx, OL_ENOMEM, "out of memory");
        memcpy(s->slots[i], ol_optim_slot(opt, i), ps->numel * sizeof(float));
    }
    s->nscalars = ol_optim_num_scalars(opt);
    for (int i = 0; i < s->nscalars && i < 8; i++)
        s->scalars[i] = *ol_optim_scalar(opt, i);
    return OL_OK;
}

static void snap_restore(snapshot *s, ol_paramset *ps, ol_optim *opt)
{
    memcpy(ps->params, s->params, ps->numel * sizeof(float));
    for (int i = 0; i < s->nslots; i++)
        memcpy(ol_optim_slot(opt, i), s->slots[i], ps->numel * sizeof(float));
    for (int i = 0; i < s->nscalars && i < 8; i++)
        *ol_optim_scalar(opt, i) = s->scalars[i];
}

static void snap_free(snapshot *s)
{
    free(s->params);
    for (int i = 0; i < OL_OPTIM_MAX_SLOTS; i++)
        free(s->slots[i]);
}

/* Evaluation weights of a Schedule-Free optimizer, leaving it exactly as it was. */
static int eval_weights(ol_ctx *ctx, ol_paramset *ps, ol_optim *opt, float **out)
{
    *out = NULL;
    if (!opt || !ol_optim_has_eval_mode(opt) || ol_optim_is_eval_mode(opt))
        return OL_OK;
    snapshot s;
    int rc = snap_take(ctx, &s, ps, opt);
    float *x = rc >= 0 ? malloc(ps->numel * sizeof(float)) : NULL;
    if (rc >= 0 && !x)
        rc = ol__err(ctx, OL_ENOMEM, "out of memory");
    if (rc >= 0)
        rc = ol_optim_eval_mode(ctx, opt, ps);
    if (rc >= 0) {
        memcpy(x, ps->params, ps->numel * sizeof(float));
        rc = ol_optim_train_mode(ctx, opt, ps);
        snap_restore(&s, ps, opt);
    }
    snap_free(&s);
    if (rc < 0) {
        free(x);
        return rc;
    }
    *out = x;
    return OL_OK;
}

typedef struct {
    ol__st_tensor *t;
    char **names;
    int n, cap;
} tlist;

static int tl_add(ol_ctx *ctx, tlist *l, const char *prefix, const ol_tensor_desc *d, const float *base)
{
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 64;
        ol__st_tensor *nt = realloc(l->t, (size_t)nc * sizeof *nt);
        if (!nt)
            return ol__err(ctx, OL_ENOMEM, "out of memory");
        l->t = nt;
        char **nn = realloc(l->names, (size_t)nc * sizeof *nn);
        if (!nn)
            return ol__err(ctx, OL_ENOMEM, "out of memory");
        l->names = nn;
        l->cap = nc;
    }
    size_t len = strlen(prefix) + strlen(d->name) + 1;
    char *name = malloc(len);
    if (!name)
        return ol__err(ctx, OL_ENOMEM, "out of memory");
    snprintf(name, len, "%s%s", prefix, d->name);
    l->names[l->n] = name;
    l->t[l->n] = (ol__st_tensor){name, OL__ST_F32, d->ndim, d->shape, base + d->offset};
    l->n++;
    return OL_OK;
}

/* The model's weights (x: their evaluation copy, NULL: the parameters) and
 * buffers, under their own names. */
static int tl_add_model(ol_ctx *ctx, tlist *l, const ol_paramset *ps, const float *x)
{
    int rc = OL_OK;
    for (int i = 0; rc >= 0 && i < ps->n; i++)
        rc = tl_add(ctx, l, "", &ps->t[i], x ? x : ps->params);
    for (int i = 0; rc >= 0 && i < ps->nb; i++)
        rc = tl_add(ctx, l, "", &ps->b[i], ps->buffers);
    return rc;
}

static void tl_free(tlist *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
    free(l->t);
}

int ol_checkpoint_save(ol_ctx *ctx, const char *path, ol_model *m, ol_optim *opt, const ol_train_state *st,
                       const char *config_json)
{
    return ol_checkpoint_save_extra(ctx, path, m, opt, st, config_json, NULL);
}

int ol_checkpoint_save_extra(ol_ctx *ctx, const char *path, ol_model *m, ol_optim *opt, const ol_train_state *st,
                             const char *config_json, const ol_checkpoint_extra *extra)
{
    ol_paramset *ps = ol_model_paramset(m);
    float *x = NULL;
    OL__TRY(eval_weights(ctx, ps, opt, &x));
    tlist l = {0};
    int rc = tl_add_model(ctx, &l, ps, x);
    if (x)
        for (int i = 0; rc >= 0 && i < ps->n; i++)
            rc = tl_add(ctx, &l, "optim.train_params.", &ps->t[i], ps->params);
    for (int s = 0; opt && rc >= 0 && s < ol_optim_num_slots(opt); s++) {
        char prefix[96];
        snprintf(prefix, sizeof prefix, "optim.%s.", ol_optim_slot_name(opt, s));
        for (int i = 0; rc >= 0 && i < ps->n; i++)
            rc = tl_add(ctx, &l, prefix, &ps->t[i], ol_optim_slot(opt, s));
    }
    /* extra 1-D tensors: descriptors live until the write (tl_add keeps their shape) */
    const int nx = extra ? extra->n : 0;
    ol_tensor_desc *xd = nx ? calloc((size_t)nx, sizeof *xd) : NULL;
    if (nx && !xd)
        rc = ol__err(ctx, OL_ENOMEM, "out of memory");
    for (int i = 0; rc >= 0 && i < nx; i++) {
        snprintf(xd[i].name, sizeof xd[i].name, "%s", extra->t[i].name);
        xd[i].ndim = 1;
        xd[i].shape[0] = (int64_t)extra->t[i].numel;
        rc = tl_add(ctx, &l, "", &xd[i], extra->t[i].data);
    }
    char *mj = model_json(m), *oj = NULL, *sj = NULL;
    if (opt) {
        json_t *sc = json_object(), *slots = json_array();
        for (int i = 0; i < ol_optim_num_scalars(opt); i++)
            json_object_set_new(sc, ol_optim_scalar_name(opt, i), json_real(*ol_optim_scalar(opt, i)));
        for (int i = 0; i < ol_optim_num_slots(opt); i++)
            json_array_append_new(slots, json_string(ol_optim_slot_name(opt, i)));
        json_t *o = json_pack("{s:s, s:I, s:o, s:o}", "type", ol_optim_get_name(opt), "steps",
                              (json_int_t)ol_optim_steps(opt), "scalars", sc, "slots", slots);
        oj = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
    }
    if (st) {
        json_t *o = state_to_json(st);
        sj = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
    }
    if (rc >= 0 && (!mj || (opt && !oj) || (st && !sj)))
        rc = ol__err(ctx, OL_ENOMEM, "out of memory");
    if (rc >= 0) {
        const char *keys[8] = {"format", "format_version", "model"}, *vals[8] = {FORMAT_NAME, FORMAT_VERSION, mj};
        int nm = 3;
        if (oj) {
            keys[nm] = "optimizer";
            vals[nm++] = oj;
        }
        if (sj) {
            keys[nm] = "train_state";
            vals[nm++] = sj;
        }
        if (config_json) {
            keys[nm] = "config";
            vals[nm++] = config_json;
        }
        if (extra && extra->meta_key) {
            keys[nm] = extra->meta_key;
            vals[nm++] = extra->meta ? extra->meta : "";
        }
        rc = ol__st_write_crc(ctx, path, l.t, l.n, keys, vals, nm, FILE_CRC_KEY);
    }
    free(mj);
    free(oj);
    free(sj);
    free(x);
    free(xd);
    tl_free(&l);
    return rc;
}

static int check_meta(ol_ctx *ctx, const char *path, ol__st_file *f);
static int check_tensor(ol_ctx *ctx, const char *path, const ol__st_file *f, const char *name, const ol_tensor_desc *d,
                        const ol__st_entry **out);

/* Read, check format, version and checksum. */
static int open_checked(ol_ctx *ctx, const char *path, ol__st_file *f)
{
    OL__TRY(ol__st_read(ctx, path, f));
    return check_meta(ctx, path, f);
}

static int model_params_from(ol_ctx *ctx, const char *path, const ol__st_file *f, ol_model_params *mp);

int ol__checkpoint_parse_mem(ol_ctx *ctx, const char *label, uint8_t *buf, size_t len, int check_crc,
                             ol_model_params *mp, ol_train_state *st)
{
    ol__st_file f;
    OL__TRY(ol__st_parse(ctx, label, buf, len, &f));
    if (check_crc)
        OL__TRY(check_meta(ctx, label, &f));
    int rc = model_params_from(ctx, label, &f, mp);
    const char *ss = ol__st_meta(&f, "train_state");
    json_error_t je;
    json_t *so = rc >= 0 && ss ? json_loads(ss, 0, &je) : NULL;
    if (rc >= 0)
        rc = so ? state_from_json(ctx, label, so, st) : ol__err(ctx, OL_EFORMAT, "%s: no train_state", label);
    json_decref(so);
    ol__st_free(&f);
    return rc;
}

static int check_meta(ol_ctx *ctx, const char *path, ol__st_file *f)
{
    const char *fmt = ol__st_meta(f, "format"), *ver = ol__st_meta(f, "format_version");
    const int v1 = ver && strcmp(ver, "1") == 0;
    const char *crc = ol__st_meta(f, v1 ? "crc32" : FILE_CRC_KEY);
    int rc = OL_OK;
    uint32_t sum = 0;
    if (!fmt || strcmp(fmt, FORMAT_NAME) != 0)
        rc = ol__err(ctx, OL_EFORMAT, "%s: not an optimlab checkpoint (a plain weight file? use --init-from)", path);
    else if (!v1 && (!ver || strcmp(ver, FORMAT_VERSION) != 0))
        rc = ol__err(ctx, OL_EFORMAT, "%s: checkpoint format version %.16s, this optimlab reads versions 1 and %d", path,
                     ver ? ver : "(none)", OL_CHECKPOINT_VERSION);
    else if (!crc || (!v1 && ol__st_file_crc(f, FILE_CRC_KEY, &sum) != 0))
        rc = ol__err(ctx, OL_EFORMAT, "%s: no checksum", path);
    else {
        char have[16];
        snprintf(have, sizeof have, "%08x", v1 ? ol__st_data_crc(f) : sum);
        if (strcmp(have, crc) != 0)
            rc = ol__err(ctx, OL_EFORMAT, "%s: checksum mismatch (stored %.8s, file %s): the file is corrupt", path,
                         crc, have);
    }
    if (rc < 0)
        ol__st_free(f);
    return rc;
}

/* What loading checks beyond the checksum, against the architecture the file
 * records: model description, training state, optimizer state, F32 tensors
 * with the model's names and shapes. *step: the step recorded inside (-1: none). */
static int check_contents(ol_ctx *ctx, const char *path, const ol__st_file *f, int64_t *step)
{
    ol_model_params mp;
    OL__TRY(model_params_from(ctx, path, f, &mp));
    *step = -1;
    for (int i = 0; i < f->n; i++)
        if (f->e[i].dtype != OL__ST_F32)
            return ol__err(ctx, OL_EFORMAT, "%s: tensor %s is %s, checkpoints hold F32", path, f->e[i].name,
                           ol__st_dtype_name(f->e[i].dtype));
    json_error_t je;
    const char *ss = ol__st_meta(f, "train_state"), *os = ol__st_meta(f, "optimizer");
    if (ss) {
        ol_train_state st;
        json_t *so = json_loads(ss, 0, &je);
        int rc = so ? state_from_json(ctx, path, so, &st) : ol__err(ctx, OL_EFORMAT, "%s: unreadable train_state", path);
        json_decref(so);
        OL__TRY(rc);
        *step = st.step;
    }
    json_t *oj = os ? json_loads(os, 0, &je) : NULL, *slots = json_object_get(oj, "slots");
    if (os && (!json_is_string(json_object_get(oj, "type")) || !json_is_integer(json_object_get(oj, "steps")) ||
               !json_is_array(slots))) {
        json_decref(oj);
        return ol__err(ctx, OL_EFORMAT, "%s: unreadable optimizer state", path);
    }
    mp.max_batch = 1;
    ol_model *m = NULL;
    int rc = ol_model_create(ctx, &mp, &m);
    if (rc < 0)
        rc = ol__err(ctx, OL_EFORMAT, "%s: the recorded model cannot be built: %s", path, ol_ctx_errmsg(ctx));
    const ol_paramset *ps = rc >= 0 ? ol_model_paramset(m) : NULL;
    const ol__st_entry *e;
    char name[OL__ST_MAX_NAME];
    for (int i = 0; rc >= 0 && i < ps->n; i++) {
        rc = check_tensor(ctx, path, f, ps->t[i].name, &ps->t[i], &e);
        for (size_t s = 0; rc >= 0 && s < json_array_size(slots); s++) {
            const char *sn = json_string_value(json_array_get(slots, s));
            if (!sn)
                rc = ol__err(ctx, OL_EFORMAT, "%s: unreadable optimizer state", path);
            else {
                snprintf(name, sizeof name, "optim.%.60s.%s", sn, ps->t[i].name);
                rc = check_tensor(ctx, path, f, name, &ps->t[i], &e);
            }
        }
    }
    for (int i = 0; rc >= 0 && i < ps->nb; i++)
        rc = check_tensor(ctx, path, f, ps->b[i].name, &ps->b[i], &e);
    ol_model_free(m);
    json_decref(oj);
    return rc;
}

/* The full check, and the step recorded inside. */
static int checkpoint_info(ol_ctx *ctx, const char *path, int64_t *step)
{
    ol__st_file f;
    OL__TRY(open_checked(ctx, path, &f));
    int rc = check_contents(ctx, path, &f, step);
    ol__st_free(&f);
    return rc;
}

int ol_checkpoint_verify(ol_ctx *ctx, const char *path)
{
    int64_t step;
    return checkpoint_info(ctx, path, &step);
}

int ol_checkpoint_load_extra(ol_ctx *ctx, const char *path, const ol_checkpoint_extra *extra, char **meta)
{
    if (meta)
        *meta = NULL;
    ol__st_file f;
    OL__TRY(open_checked(ctx, path, &f));
    int rc = OL_OK;
    for (int i = 0; rc >= 0 && i < extra->n; i++) {
        const ol__st_entry *e = ol__st_find(&f, extra->t[i].name);
        if (!e)
            rc = ol__err(ctx, OL_ENOENT, "%s: tensor %s is missing", path, extra->t[i].name);
        else if (e->dtype != OL__ST_F32 || e->ndim != 1 || (size_t)e->shape[0] != extra->t[i].numel)
            rc = ol__err(ctx, OL_ESHAPE, "%s: tensor %s has the wrong size for this run", path, extra->t[i].name);
    }
    const char *mv = extra->meta_key ? ol__st_meta(&f, extra->meta_key) : NULL;
    if (rc >= 0 && meta && mv && !(*meta = strdup(mv)))
        rc = ol__err(ctx, OL_ENOMEM, "out of memory");
    for (int i = 0; rc >= 0 && i < extra->n; i++)
        memcpy(extra->t[i].data, ol__st_data(&f, ol__st_find(&f, extra->t[i].name)),
               extra->t[i].numel * sizeof(float));
    ol__st_free(&f);
    return rc;
}

int ol_checkpoint_read_config(ol_ctx *ctx, const char *path, char **config_json)
{
    *config_json = NULL;
    ol__st_file f;
    OL__TRY(open_checked(ctx, path, &f));
    const char *c = ol__st_meta(&f, "config");
    int rc = OL_OK;
    if (!c)
        rc = ol__err(ctx, OL_EFORMAT, "%s: the checkpoint stores no configuration", path);
    else if (!(*config_json = strdup(c)))
        rc = ol__err(ctx, OL_ENOMEM, "out of memory");
    ol__st_free(&f);
    return rc;
}

static int check_tensor(ol_ctx *ctx, const char *path, const ol__st_file *f, const char *name, const ol_tensor_desc *d,
                        const ol__st_entry **out)
{
    const ol__st_entry *e = ol__st_find(f, name);
    if (!e)
        return ol__err(ctx, OL_ESHAPE, "%s: tensor %s is missing", path, name);
    int same = e->ndim == d->ndim;
    for (int i = 0; same && i < d->ndim; i++)
        same = e->shape[i] == d->shape[i];
    if (!same)
        return ol__err(ctx, OL_ESHAPE, "%s: tensor %s has the wrong shape for this model", path, name);
    *out = e;
    return OL_OK;
}

int ol_checkpoint_load(ol_ctx *ctx, const char *path, ol_model *m, ol_optim *opt, ol_train_state *st)
{
    ol__st_file f;
    OL__TRY(open_checked(ctx, path, &f));
    int rc = OL_OK;
    char *mj = model_json(m);
    const char *fm = ol__st_meta(&f, "model");
    if (!mj)
        rc = ol__err(ctx, OL_ENOMEM, "out of memory");
    else if (!fm || strcmp(fm, mj) != 0)
        rc = ol__err(ctx, OL_ESHAPE, "%s: checkpoint of a different model (%s; this run: %s)", path, fm ? fm : "?", mj);
    free(mj);
    json_t *oj = NULL;
    if (rc >= 0 && opt) {
        const char *os = ol__st_meta(&f, "optimizer");
        json_error_t je;
        oj = os ? json_loads(os, 0, &je) : NULL;
        const char *type = json_string_value(json_object_get(oj, "type"));
        if (!oj || !type || !json_is_integer(json_object_get(oj, "steps")))
            rc = ol__err(ctx, OL_EFORMAT, "%s: no optimizer state", path);
        else if (strcmp(type, ol_optim_get_name(opt)) != 0)
            rc = ol__err(ctx, OL_ESHAPE, "%s: optimizer state is for %s, this run uses %s", path, type,
                         ol_optim_get_name(opt));
    }
    ol_train_state tmp_state;
    if (rc >= 0 && st) {
        const char *ss = ol__st_meta(&f, "train_state");
        json_error_t je;
        json_t *so = ss ? json_loads(ss, 0, &je) : NULL;
        rc = so ? state_from_json(ctx, path, so, &tmp_state) : ol__err(ctx, OL_EFORMAT, "%s: no train_state", path);
        json_decref(so);
    }
    ol_paramset *ps = ol_model_paramset(m);
    const int sf = opt && ol_optim_has_eval_mode(opt);
    /* check everything before touching the model */
    const ol__st_entry *e;
    char name[OL__ST_MAX_NAME];
    for (int i = 0; rc >= 0 && i < ps->n; i++) {
        rc = check_tensor(ctx, path, &f, ps->t[i].name, &ps->t[i], &e);
        if (rc >= 0 && sf) {
            snprintf(name, sizeof name, "optim.train_params.%s", ps->t[i].name);
            rc = check_tensor(ctx, path, &f, name, &ps->t[i], &e);
        }
        for (int s = 0; rc >= 0 && opt && s < ol_optim_num_slots(opt); s++) {
            snprintf(name, sizeof name, "optim.%s.%s", ol_optim_slot_name(opt, s), ps->t[i].name);
            rc = check_tensor(ctx, path, &f, name, &ps->t[i], &e);
        }
    }
    for (int i = 0; rc >= 0 && i < ps->nb; i++)
        rc = check_tensor(ctx, path, &f, ps->b[i].name, &ps->b[i], &e);
    for (int i = 0; rc >= 0 && i < f.n; i++)
        if (f.e[i].dtype != OL__ST_F32)
            rc = ol__err(ctx, OL_EFORMAT, "%s: tensor %s is %s, checkpoints hold F32", path, f.e[i].name,
                         ol__st_dtype_name(f.e[i].dtype));
    /* all good: copy */
    for (int i = 0; rc >= 0 && i < ps->n; i++) {
        if (sf)
            snprintf(name, sizeof name, "optim.train_params.%s", ps->t[i].name);
        e = ol__st_find(&f, sf ? name : ps->t[i].name);
        memcpy(ps->params + ps->t[i].offset, ol__st_data(&f, e), ps->t[i].numel * sizeof(float));
        for (int s = 0; opt && s < ol_optim_num_slots(opt); s++) {
            snprintf(name, sizeof name, "optim.%s.%s", ol_optim_slot_name(opt, s), ps->t[i].name);
            e = ol__st_find(&f, name);
            memcpy(ol_optim_slot(opt, s) + ps->t[i].offset, ol__st_data(&f, e), ps->t[i].numel * sizeof(float));
        }
    }
    for (int i = 0; rc >= 0 && i < ps->nb; i++) {
        e = ol__st_find(&f, ps->b[i].name);
        memcpy(ps->buffers + ps->b[i].offset, ol__st_data(&f, e), ps->b[i].numel * sizeof(float));
    }
    if (rc >= 0 && opt) {
        rc = ol_optim_set_steps(ctx, opt, (int64_t)json_integer_value(json_object_get(oj, "steps")));
        json_t *sc = json_object_get(oj, "scalars");
        for (int i = 0; i < ol_optim_num_scalars(opt); i++) {
            json_t *v = json_object_get(sc, ol_optim_scalar_name(opt, i));
            if (json_is_number(v))
                *ol_optim_scalar(opt, i) = json_number_value(v);
        }
    }
    if (rc >= 0 && st)
        *st = tmp_state;
    json_decref(oj);
    ol__st_free(&f);
    return rc;
}

int ol_checkpoint_model_params(ol_ctx *ctx, const char *path, ol_model_params *mp)
{
    ol__st_file f;
    OL__TRY(open_checked(ctx, path, &f));
    int rc = model_params_from(ctx, path, &f, mp);
    ol__st_free(&f);
    return rc;
}

static int model_params_from(ol_ctx *ctx, const char *path, const ol__st_file *f, ol_model_params *mp)
{
    const char *ms = ol__st_meta(f, "model");
    json_error_t je;
    json_t *o = ms ? json_loads(ms, 0, &je) : NULL;
    int rc = OL_OK;
    *mp = ol_model_default_params();
    const char *arch = json_string_value(json_object_get(o, "arch")), *sc = json_string_value(json_object_get(o, "shortcut"));
    json_t *in = json_object_get(o, "input"), *w = json_object_get(o, "widths");
    if (!arch || !sc || !json_is_array(in) || json_array_size(in) != 3 || !json_is_array(w) ||
        json_array_size(w) > OL_MLP_MAX_LAYERS)
        rc = ol__err(ctx, OL_EFORMAT, "%s: no model description", path);
    const ol_model_params d = *mp;
    if (rc >= 0) {
        mp->depth = (int)json_integer_value(json_object_get(o, "depth"));
        mp->width = (int)json_integer_value(json_object_get(o, "width"));
        mp->no_skip = json_is_true(json_object_get(o, "no_skip"));
        /* the architecture whose name, with the stored depth and width, is
         * exactly the stored name (a substring read resnet182 as resnet18);
         * resnet18 before the CIFAR nets, whose name it would also match */
        static const ol_arch order[] = {OL_ARCH_MLP, OL_ARCH_GPT, OL_ARCH_RESNET18, OL_ARCH_RESNET_CIFAR};
        int found = 0;
        for (size_t a = 0; a < sizeof order / sizeof order[0] && !found; a++) {
            char name[64];
            mp->arch = order[a];
            ol_model_params_name(mp, name, sizeof name);
            found = strcmp(name, arch) == 0;
        }
        if (!found)
            rc = ol__err(ctx, OL_EFORMAT, "%s: unknown model architecture '%s' (depth %d, width %d)", path, arch,
                         mp->depth, mp->width);
    }
    if (rc >= 0) {
        mp->shortcut = sc[0];
        mp->nwidths = (int)json_array_size(w);
        for (int i = 0; i < mp->nwidths; i++)
            mp->widths[i] = (int)json_integer_value(json_array_get(w, (size_t)i));
        if (mp->arch != OL_ARCH_MLP)
            mp->nwidths = d.nwidths;
        mp->in_c = (int)json_integer_value(json_array_get(in, 0));
        mp->in_h = (int)json_integer_value(json_array_get(in, 1));
        mp->in_w = (int)json_integer_value(json_array_get(in, 2));
        mp->num_classes = (int)json_integer_value(json_object_get(o, "classes"));
    }
    if (rc >= 0 && mp->arch == OL_ARCH_GPT) {
        static const char *const keys[4] = {"n_layer", "n_head", "n_embd", "seq_len"};
        int *fields[4] = {&mp->n_layer, &mp->n_head, &mp->n_embd, &mp->seq_len};
        for (int i = 0; i < 4 && rc >= 0; i++) {
            json_t *v = json_object_get(o, keys[i]);
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (1 << 20))
                rc = ol__err(ctx, OL_EFORMAT, "%s: the gpt model description has no valid %s", path, keys[i]);
            else
                *fields[i] = (int)json_integer_value(v);
        }
    }
    json_decref(o);
    return rc;
}

static int parse_step(const char *name, int64_t *step)
{
    int64_t s;
    char tail[32];
    if (sscanf(name, "ckpt-%" SCNd64 ".safetenso%31s", &s, tail) == 2 && strcmp(tail, "rs") == 0) {
        *step = s;
        return 1;
    }
    return 0;
}

/* A checkpoint file of a run directory, checked. */
typedef struct {
    int64_t step; /* recorded inside (the name's for files without training state) */
    int rc;       /* of the full check */
    char name[256];
} ckpt_name;

/* Valid ones first, newest recorded step first; the name breaks ties. */
static int cmp_ckpt(const void *a, const void *b)
{
    const ckpt_name *x = a, *y = b;
    if ((x->rc < 0) != (y->rc < 0))
        return x->rc < 0 ? 1 : -1;
    if (x->step != y->step)
        return (x->step < y->step) - (x->step > y->step);
    return -strcmp(x->name, y->name);
}

/* Every regular file named like a checkpoint, fully checked (never by name alone). */
static int list_ckpts(ol_ctx *ctx, const char *dir, ckpt_name **out, int *n, char *why, size_t wcap)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return ol__err(ctx, errno == ENOENT ? OL_ENOENT : OL_EIO, "run directory %s: %s", dir, strerror(errno));
    int cap = 0;
    struct dirent *de;
    char path[4096];
    int64_t best_bad = INT64_MIN;
    while ((de = readdir(d))) {
        int64_t s;
        struct stat sb;
        if (!parse_step(de->d_name, &s) || strlen(de->d_name) >= 256)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue; /* a FIFO or directory named like a checkpoint is not one */
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            ckpt_name *nl = realloc(*out, (size_t)cap * sizeof *nl);
            if (!nl) {
                closedir(d);
                return ol__err(ctx, OL_ENOMEM, "out of memory");
            }
            *out = nl;
        }
        ckpt_name *c = &(*out)[*n];
        snprintf(c->name, sizeof c->name, "%s", de->d_name);
        int64_t inner = -1;
        c->rc = checkpoint_info(ctx, path, &inner);
        c->step = inner >= 0 ? inner : s;
        if (c->rc < 0 && s >= best_bad && why) { /* why the newest-named bad one failed */
            best_bad = s;
            snprintf(why, wcap, "%s", ol_ctx_errmsg(ctx));
        }
        (*n)++;
    }
    closedir(d);
    if (*n)
        qsort(*out, (size_t)*n, sizeof **out, cmp_ckpt);
    return OL_OK;
}

int ol_checkpoint_latest(ol_ctx *ctx, const char *dir, char *path, size_t cap)
{
    ckpt_name *l;
    int n;
    char why[512] = "";
    OL__TRY(list_ckpts(ctx, dir, &l, &n, why, sizeof why));
    int rc;
    if (n > 0 && l[0].rc >= 0) {
        snprintf(path, cap, "%s/%s", dir, l[0].name);
        rc = OL_OK;
    } else if (n > 0) {
        rc = ol__err(ctx, OL_EFORMAT, "%s: none of the %d checkpoints verifies (newest: %s)", dir, n, why);
    } else {
        rc = ol__err(ctx, OL_ENOENT, "%s: no checkpoint", dir);
    }
    free(l);
    return rc;
}

/* Is the process that wrote a temporary file still alive? */
static int pid_alive(long pid)
{
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* Temporary files of writes that a crash interrupted (never a live process's). */
static void remove_stale_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    char path[4096];
    while ((de = readdir(d)))
        if (strncmp(de->d_name, "ckpt-", 5) == 0 && strstr(de->d_name, ".safetensors.tmp.")) {
            long pid = strtol(strstr(de->d_name, ".tmp.") + 5, NULL, 10);
            if (pid == (long)getpid() || pid_alive(pid))
                continue; /* being written */
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            unlink(path);
        }
    closedir(d);
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return a && b && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int ol_checkpoint_prune(ol_ctx *ctx, const char *dir, int keep)
{
    return ol_checkpoint_prune_except(ctx, dir, keep, NULL, 0);
}

int ol_checkpoint_prune_except(ol_ctx *ctx, const char *dir, int keep, const char *const *protect, int nprotect)
{
    remove_stale_tmp(dir);
    if (keep <= 0)
        return OL_OK;
    ckpt_name *l;
    int n;
    OL__TRY(list_ckpts(ctx, dir, &l, &n, NULL, 0));
    int valid = 0;
    for (int i = 0; i < n; i++)
        valid += l[i].rc >= 0;
    char path[4096];
    for (int i = keep; i < n; i++) {
        /* a file that does not verify is not counted; it goes only once keep valid ones stay,
         * and only when its content is bad (not on an I/O error) */
        if (l[i].rc < 0 && (valid < keep || (l[i].rc != OL_EFORMAT && l[i].rc != OL_ESHAPE)))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, l[i].name);
        int keep_it = 0;
        for (int k = 0; k < nprotect; k++)
            keep_it |= same_file(path, protect[k]);
        if (!keep_it)
            unlink(path);
    }
    free(l);
    return OL_OK;
}

int ol_weights_export(ol_ctx *ctx, const char *path, ol_model *m, ol_optim *opt)
{
    ol_paramset *ps = ol_model_paramset(m);
    float *x = NULL;
    OL__TRY(eval_weights(ctx, ps, opt, &x));
    tlist l = {0};
    int rc = tl_add_model(ctx, &l, ps, x);
    /* PyTorch's BatchNorm expects num_batches_tracked (int64 scalar) under strict loading */
    int64_t nbt = opt ? ol_optim_steps(opt) : 0;
    int nbn = 0;
    for (int i = 0; i < ps->nb; i++)
        nbn += strstr(ps->b[i].name, ".running_mean") != NULL;
    char **extra = calloc((size_t)(nbn ? nbn : 1), sizeof(char *));
    int ne = 0;
    if (!extra)
        rc = ol__err(ctx, OL_ENOMEM, "out of memory");
    for (int i = 0; rc >= 0 && i < ps->nb; i++) {
        const char *suffix = strstr(ps->b[i].name, ".running_mean");
        if (!suffix)
            continue;
        size_t plen = (size_t)(suffix - ps->b[i].name);
        extra[ne] = malloc(plen + 32);
        if (!extra[ne]) {
            rc = ol__err(ctx, OL_ENOMEM, "out of memory");
            break;
        }
        snprintf(extra[ne], plen + 32, "%.*s.num_batches_tracked", (int)plen, ps->b[i].name);
        ne++;
    }
    ol__st_tensor *all = rc >= 0 ? malloc((size_t)(l.n + ne) * sizeof *all) : NULL;
    if (rc >= 0 && !all)
        rc = ol__err(ctx, OL_ENOMEM, "out of memory");
    if (rc >= 0) {
        memcpy(all, l.t, (size_t)l.n * sizeof *all);
        for (int i = 0; i < ne; i++)
            all[l.n + i] = (ol__st_tensor){extra[i], OL__ST_I64, 0, NULL, &nbt};
        char arch[64];
        ol_model_params_name(ol_model_get_params(m), arch, sizeof arch);
        const char *keys[2] = {"format", "model"}, *vals[2] = {"optimlab-weights", arch};
        rc = ol__st_write(ctx, path, all, l.n + ne, keys, vals, 2);
    }
    for (int i = 0; i < ne; i++)
        free(extra[i]);
    free(extra);
    free(all);
    free(x);
    tl_free(&l);
    return rc;
}

int ol_weights_import(ol_ctx *ctx, const char *path, ol_model *m)
{
    ol__st_file f;
    OL__TRY(ol__st_read(ctx, path, &f));
    ol_paramset *ps = ol_model_paramset(m);
    int rc = OL_OK;
    const ol__st_entry *e;
    for (int i = 0; rc >= 0 && i < ps->n; i++)
        rc = check_tensor(ctx, path, &f, ps->t[i].name, &ps->t[i], &e);
    for (int i = 0; rc >= 0 && i < ps->nb; i++)
        rc = check_tensor(ctx, path, &f, ps->b[i].name, &ps->b[i], &e);
    for (int i = 0; rc >= 0 && i < f.n; i++) {
        int known = ol_paramset_find(ps, f.e[i].name) >= 0 || ol_paramset_find_buffer(ps, f.e[i].name) >= 0;
        if (known && f.e[i].dtype != OL__ST_F32 && f.e[i].dtype != OL__ST_F64 && f.e[i].dtype != OL__ST_F16 &&
            f.e[i].dtype != OL__ST_BF16)
            rc = ol__err(ctx, OL_EFORMAT, "%s: tensor %s is %s, not a floating-point type", path, f.e[i].name,
                         ol__st_dtype_name(f.e[i].dtype));
    }
    float *np = NULL, *nb = NULL;
    if (rc >= 0) { /* convert into copies first: nothing changes unless all succeed */
        np = malloc(ps->numel * sizeof(float));
        nb = malloc((ps->bnumel ? ps->bnumel : 1) * sizeof(float));
        if (!np || !nb)
            rc = ol__err(ctx, OL_ENOMEM, "out of memory");
        else {
            memcpy(np, ps->params, ps->numel * sizeof(float));
            memcpy(nb, ps->buffers, ps->bnumel * sizeof(float));
        }
    }
    for (int i = 0; rc >= 0 && i < ps->n; i++)
        rc = ol__st_to_f32(ctx, &f, ol__st_find(&f, ps->t[i].name), np + ps->t[i].offset);
    for (int i = 0; rc >= 0 && i < ps->nb; i++)
        rc = ol__st_to_f32(ctx, &f, ol__st_find(&f, ps->b[i].name), nb + ps->b[i].offset);
    /* NaN or inf weights would only surface later as a "divergence" */
    for (int i = 0; rc >= 0 && i < ps->n + ps->nb; i++) {
        const ol_tensor_desc *d = i < ps->n ? &ps->t[i] : &ps->b[i - ps->n];
        const float *x = (i < ps->n ? np : nb) + d->offset;
        for (size_t k = 0; k < d->numel; k++)
            if (!isfinite(x[k])) {
                rc = ol__err(ctx, OL_EFORMAT, "%s: tensor %s holds a non-finite value (%g at index %zu)", path,
                             d->name, (double)x[k], k);
                break;
            }
    }
    if (rc >= 0) {
        memcpy(ps->params, np, ps->numel * sizeof(float));
        memcpy(ps->buffers, nb, ps->bnumel * sizeof(float));
    }
    free(np);
    free(nb);
    ol__st_free(&f);
    return rc;
}
