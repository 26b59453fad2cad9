/* Finite-difference gradient checks of whole networks: the MLP, CIFAR ResNets
 * with and without skips, shortcut options A and B, torchvision ResNet-18, on
 * every activation layout, BatchNorm in train and eval mode, for the reference
 * and the oneDNN backends.
 *
 * For sampled parameters the central difference (L(p+h) - L(p-h)) / 2h of the
 * mean loss is compared with the analytic gradient, and so is the directional
 * derivative along a random direction over all parameters at once.
 *
 * A coordinate where the differences at the four steps disagree with each
 * other sits in a region where the loss is not smooth at any step float32
 * can resolve; it is counted as erratic and skipped (at most 10% may be).
 *
 * Strict cases must pass on every other coordinate. With batch statistics, a deep
 * net's loss is kinked on every scale a float32 difference can resolve (each
 * BatchNorm centres its ReLU inputs at 0), so for deep nets in train mode the
 * check is statistical: at most 5% of the coordinates may miss (a wrong
 * gradient misses on most of a tensor), and the layer-by-layer checks in
 * test_gradcheck_layers and the train-mode ResNet-8 cases here are strict. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "optimlab.h"
#include "testutil.h"

typedef struct {
    ol_ctx *ctx;
    ol_model *m;
    const float *x;
    const int32_t *y;
    int n;
    int train_bn;
} problem;

static double loss_at(problem *p)
{
    double l = 0.0;
    int correct = 0;
    if (ol_model_forward(p->ctx, p->m, p->x, p->n, p->train_bn) < 0 ||
        ol_model_loss(p->ctx, p->m, p->y, p->n, 0.1f, 1.0f / (float)p->n, &l, &correct) < 0) {
        TU_FAIL("forward failed: %s", ol_ctx_errmsg(p->ctx));
        return NAN;
    }
    return l / p->n;
}

static int check(const char *label, ol_ctx *ctx, ol_model_params mp, ol_backend be, int n, int train_bn,
                 int samples_per_tensor, int strict)
{
    /* OPTIMLAB_TEST_QUICK (sanitizer builds): every configuration, one coordinate per tensor */
    if (getenv("OPTIMLAB_TEST_QUICK"))
        samples_per_tensor = 1;
    int before = tu_failures;
    if (ol_ctx_set_backend(ctx, be) < 0) {
        printf("  skip %s on %s: %s\n", label, ol_backend_name(be), ol_ctx_errmsg(ctx));
        return 0;
    }
    ol_model *m = NULL;
    mp.max_batch = n;
    ASSERT_OK(ol_model_create(ctx, &mp, &m), ctx);
    if (!m)
        return 1;
    ol_paramset *ps = ol_model_paramset(m);
    /* perturb BN affine parameters and statistics away from 1/0 so they matter */
    ol__rng r;
    ol__rng_seed(&r, 7, 99, 0);
    for (int i = 0; i < ps->n; i++)
        if (ps->t[i].kind == OL_KIND_NORM)
            for (size_t j = 0; j < ps->t[i].numel; j++)
                ps->params[ps->t[i].offset + j] += (float)(0.2 * ol__rng_normal(&r));
    for (int i = 0; i < ps->nb; i++)
        for (size_t j = 0; j < ps->b[i].numel; j++)
            ps->buffers[ps->b[i].offset + j] += (float)(0.1 * fabs(ol__rng_normal(&r)));
    size_t in = (size_t)mp.in_c * mp.in_h * mp.in_w * n;
    float *x = malloc(in * sizeof(float));
    int32_t *y = malloc((size_t)n * sizeof(int32_t));
    for (size_t i = 0; i < in; i++)
        x[i] = (float)ol__rng_normal(&r);
    for (int i = 0; i < n; i++)
        y[i] = (int32_t)ol__rng_below(&r, (uint32_t)mp.num_classes);
    problem p = {ctx, m, x, y, n, train_bn};

    /* BN running statistics change on every train-mode forward; they do not
     * enter train-mode outputs, and eval-mode checks never update them. */
    ol_paramset_zero_grads(ps);
    double l0 = loss_at(&p);
    ASSERT_OK(ol_model_backward(ctx, m), ctx);
    ASSERT_TRUE(isfinite(l0));
    float *g = malloc(ps->numel * sizeof(float));
    memcpy(g, ps->grads, ps->numel * sizeof(float));

    /* Central differences at three step sizes: the largest is least affected by
     * float rounding, the smaller ones cross fewer ReLU kinks (BatchNorm centres
     * activations at 0, so with batch statistics the loss is kinked on a scale
     * of 1e-3; in deep plain nets the differences converge to the analytic value
     * only near 1e-5). A
     * coordinate passes when one step agrees; a wrong gradient disagrees at
     * every step. */
    static const double steps[4] = {1e-3, 3e-4, 1e-4, 3e-5};
    int checked = 0, kinked = 0, missed = 0, erratic = 0;
    double worst = 0.0;
    for (int i = 0; i < ps->n; i++) {
        const ol_tensor_desc *t = &ps->t[i];
        int ns = (int)(t->numel < (size_t)samples_per_tensor ? t->numel : (size_t)samples_per_tensor);
        for (int s = 0; s < ns; s++) {
            size_t j = t->offset + (ns == (int)t->numel ? (size_t)s : ol__rng_below(&r, (uint32_t)t->numel));
            float orig = ps->params[j];
            double an = g[j], best = INFINITY, bestfd = 0.0, fds[4], tols[4];
            int used = 0, nfd = 0;
            for (int k = 0; k < 4 && best > 1.0; k++) {
                float up = orig + (float)steps[k], dn = orig - (float)steps[k];
                ps->params[j] = up;
                double lp = loss_at(&p);
                ps->params[j] = dn;
                double lm = loss_at(&p);
                ps->params[j] = orig;
                double fd = (lp - lm) / ((double)up - (double)dn);
                /* rounding of the float forward: ~1e-7 relative in the loss */
                double tol = 1e-5 + 5e-8 * fabs(l0) / steps[k] + 1e-2 * fmax(fabs(fd), fabs(an));
                fds[nfd] = fd;
                tols[nfd++] = tol;
                double e = fabs(fd - an) / tol;
                if (e < best) {
                    best = e;
                    bestfd = fd;
                    used = k;
                }
            }
            kinked += used > 0;
            checked++;
            if (best <= 1.0) {
                worst = fmax(worst, best);
                if (strict)
                    tu_checks++;
                continue;
            }
            /* No step agrees. If the differences disagree among themselves the
             * loss is not smooth around this coordinate at any resolvable step:
             * nothing can be concluded there. A wrong gradient gives differences
             * that agree with each other and not with it. */
            double lo = fds[0], hi = fds[0];
            int inconsistent = 0;
            for (int a = 0; a < nfd; a++) {
                lo = fmin(lo, fds[a]);
                hi = fmax(hi, fds[a]);
                for (int b = a + 1; b < nfd; b++)
                    inconsistent |= fabs(fds[a] - fds[b]) > tols[a] + tols[b];
            }
            if (inconsistent) {
                erratic++;
                fprintf(stderr, "  (erratic) %s [%s] %s[%zu]: analytic %.6g, differences %.3g .. %.3g\n", label,
                        ol_backend_name(be), t->name, j - t->offset, an, lo, hi);
                continue;
            }
            missed++;
            worst = fmax(worst, best);
            if (strict) {
                tu_checks++;
                TU_FAIL("%s [%s] %s[%zu]: analytic %.6g vs numeric %.6g", label, ol_backend_name(be), t->name,
                        j - t->offset, an, bestfd);
            } else {
                fprintf(stderr, "  (kinked) %s [%s] %s[%zu]: analytic %.6g vs numeric %.6g\n", label,
                        ol_backend_name(be), t->name, j - t->offset, an, bestfd);
            }
        }
    }
    tu_checks++;
    if (!(erratic <= checked / 10))
        TU_FAIL("%s [%s]: %d of %d coordinates have erratic differences (more than 10%%)", label, ol_backend_name(be),
                erratic, checked);
    /* directional derivative along a random direction over all parameters */
    float *dir = malloc(ps->numel * sizeof(float));
    float *p0 = malloc(ps->numel * sizeof(float));
    memcpy(p0, ps->params, ps->numel * sizeof(float));
    double gd = 0.0, dn = 0.0;
    for (size_t j = 0; j < ps->numel; j++) {
        dir[j] = (float)ol__rng_normal(&r);
        dn += (double)dir[j] * dir[j];
    }
    dn = sqrt(dn);
    for (size_t j = 0; j < ps->numel; j++) {
        dir[j] = (float)(dir[j] / dn);
        gd += (double)dir[j] * g[j];
    }
    double fdd = 0.0, derr = INFINITY;
    for (int k = 0; k < 4 && derr > 1.0; k++) {
        for (size_t j = 0; j < ps->numel; j++)
            ps->params[j] = p0[j] + (float)(steps[k] * dir[j]);
        double lp = loss_at(&p);
        for (size_t j = 0; j < ps->numel; j++)
            ps->params[j] = p0[j] - (float)(steps[k] * dir[j]);
        double lm = loss_at(&p);
        double fd = (lp - lm) / (2 * steps[k]);
        double e = fabs(fd - gd) / (1e-5 + 5e-8 * fabs(l0) / steps[k] + 1e-2 * fabs(gd));
        if (e < derr) {
            derr = e;
            fdd = fd;
        }
    }
    memcpy(ps->params, p0, ps->numel * sizeof(float));
    tu_checks++;
    if (strict && !(derr <= 1.0))
        TU_FAIL("%s [%s] directional derivative: analytic %.6g vs numeric %.6g", label, ol_backend_name(be), gd, fdd);
    if (!strict && !(missed <= checked / 20))
        TU_FAIL("%s [%s]: %d of %d coordinates disagree (more than 5%%)", label, ol_backend_name(be), missed, checked);
    printf("  %-22s %-6s %s %-6s %4d coords (%3d at a smaller step, %2d erratic, %2d missed), worst err/tol %.2f; "
           "directional %.5g vs %.5g\n",
           label, ol_backend_name(be), train_bn ? "train" : "eval ", strict ? "strict" : "5%", checked, kinked, erratic,
           missed, worst, gd, fdd);
    free(dir);
    free(p0);
    free(g);
    free(x);
    free(y);
    ol_model_free(m);
    return tu_failures != before;
}

int main(void)
{
    ol_ctx *ctx = ol_ctx_new(2);
    const ol_backend backends[] = {OL_BACKEND_REF, OL_BACKEND_ONEDNN};
    for (int bi = 0; bi < 2; bi++) {
        ol_backend be = backends[bi];
        ol_model_params mp = ol_model_default_params();

        /* MLP 64-32-16-5 */
        ol_model_params_set_arch(ctx, &mp, "mlp");
        mp.in_c = 1;
        mp.in_h = mp.in_w = 8;
        mp.widths[0] = 32;
        mp.widths[1] = 16;
        mp.nwidths = 2;
        mp.num_classes = 5;
        check("mlp 64-32-16-5", ctx, mp, be, 4, 1, 8, 1);

        /* CIFAR ResNet-8 (n=1) on every layout, with and without skips, A and B */
        const int blocks[] = {1, 8, 16};
        for (int k = 0; k < 3; k++) {
            char label[64];
            mp = ol_model_default_params();
            ol_model_params_set_arch(ctx, &mp, "resnet8");
            mp.in_c = 2;
            mp.in_h = mp.in_w = 8;
            mp.num_classes = 4;
            mp.channel_block = blocks[k];
            snprintf(label, sizeof label, "resnet8 A, block %d", blocks[k]);
            check(label, ctx, mp, be, 3, 1, 4, 1);
            mp.shortcut = 'B';
            snprintf(label, sizeof label, "resnet8 B, block %d", blocks[k]);
            check(label, ctx, mp, be, 3, 1, 4, 1);
            mp.shortcut = 'A';
            mp.no_skip = 1;
            snprintf(label, sizeof label, "plain8, block %d", blocks[k]);
            check(label, ctx, mp, be, 3, 1, 4, 1);
        }
        /* ResNet-20 as trained, skips and no skips, BN in train and eval mode */
        mp = ol_model_default_params();
        ol_model_params_set_arch(ctx, &mp, "resnet20");
        mp.in_c = 1;
        mp.in_h = mp.in_w = 12;
        check("resnet20 A", ctx, mp, be, 2, 0, 2, 1);
        check("resnet20 A", ctx, mp, be, 2, 1, 2, 0);
        mp.no_skip = 1;
        check("plain20", ctx, mp, be, 2, 0, 2, 1);
        check("plain20", ctx, mp, be, 2, 1, 2, 0);
        mp.no_skip = 0;
        mp.shortcut = 'B';
        check("resnet20 B", ctx, mp, be, 2, 0, 2, 1);
        check("resnet20 B", ctx, mp, be, 2, 1, 2, 0);
        mp.width = 2;
        check("wrn20-2 B", ctx, mp, be, 2, 0, 1, 1);
        /* torchvision ResNet-18: 7x7 stem, max-pool, downsample projections */
        if (be == OL_BACKEND_ONEDNN) {
            mp = ol_model_default_params();
            ol_model_params_set_arch(ctx, &mp, "resnet18");
            mp.in_c = 3;
            mp.in_h = mp.in_w = 64; /* layer4 at 2x2: BatchNorm over 16 values */
            check("resnet18", ctx, mp, be, 4, 0, 1, 1);
            check("resnet18", ctx, mp, be, 4, 1, 1, 0);
        }
    }
    ol_ctx_free(ctx);
    return tu_finish("test_gradcheck_models");
}
