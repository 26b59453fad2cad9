#include "gradcheck.h"

#include <math.h>

#include "testutil.h"

double gc_fd_check(gc_loss_fn loss, void *user, float *v, double an, double l0, double *fd_out)
{
    static const double steps[3] = {1e-2, 1e-3, 1e-4};
    double best = INFINITY;
    float orig = *v;
    for (int k = 0; k < 3 && best > 1.0; k++) {
        float up = orig + (float)steps[k], dn = orig - (float)steps[k];
        *v = up;
        double lp = loss(user);
        *v = dn;
        double lm = loss(user);
        *v = orig;
        double fd = (lp - lm) / ((double)up - (double)dn);
        /* rounding of the float forward: ~1e-7 relative in the loss */
        double tol = 1e-5 + 5e-8 * fabs(l0) / steps[k] + 5e-3 * fmax(fabs(fd), fabs(an));
        if (fabs(fd - an) / tol < best) {
            best = fabs(fd - an) / tol;
            *fd_out = fd;
        }
    }
    return best;
}

int gc_check_values(gc_loss_fn loss, void *user, float *v, const float *g, size_t n, size_t cap, ol__rng *r,
                    double l0, const char *label, const char *name, double *worst)
{
    size_t cnt = n < cap ? n : cap;
    for (size_t s = 0; s < cnt; s++) {
        size_t j = cnt == n ? s : ol__rng_below(r, (uint32_t)n);
        double fd = 0.0, e = gc_fd_check(loss, user, &v[j], g[j], l0, &fd);
        *worst = fmax(*worst, e);
        tu_checks++;
        if (!(e <= 1.0))
            TU_FAIL("%s %s[%zu]: analytic %.7g vs numeric %.7g", label, name, j, g[j], fd);
    }
    return (int)cnt;
}
