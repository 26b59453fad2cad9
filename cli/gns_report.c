/* The end-of-run lines of --gns: the gradient noise scale and what it means
 * for the batch size and the linear-then-sqrt knee (docs/diagnostics.md). */
#include <math.h>
#include <stdio.h>

#include "common.h"

void cli_print_gns(const ol_train_params *tp, const ol_train_result *res)
{
    const double bn = res->gns_run;
    if (res->gns_steps == 0 || !(bn > 0)) {
        printf("gradient noise scale: no estimate (%lld steps measured%s)\n", (long long)res->gns_steps,
               res->gns_steps ? "; the summed |G|^2 or tr(Sigma) estimates are <= 0: train longer" : "");
        return;
    }
    printf("gradient noise scale B_simple = tr(Sigma)/|G|^2 (McCandlish et al. 2018, %lld steps): ",
           (long long)res->gns_steps);
    if (isfinite(res->gns_first))
        printf("%.4g at the first step record, ", res->gns_first);
    if (isfinite(res->gns_final))
        printf("%.4g at the end, ", res->gns_final);
    printf("%.4g over the whole run\n", bn);
    /* steps S = S_min (1 + B_noise/B), samples E = E_min (1 + B/B_noise) */
    const double b = (double)tp->batch_size;
    printf("critical batch size over training ~ %.0f: at --batch-size %d the run takes %.2fx the fewest possible "
           "steps and %.2fx the fewest samples; ",
           bn, tp->batch_size, 1.0 + bn / b, 1.0 + b / bn);
    if (b < 0.5 * bn)
        printf("batches up to ~%.0f would still cut the steps almost in proportion\n", bn);
    else if (b > 2.0 * bn)
        printf("most of each batch beyond ~%.0f samples is spent for little progress\n", bn);
    else
        printf("the batch is near the knee of the steps/samples trade-off\n");
    if (isfinite(res->gns_first) && res->gns_final > 4.0 * res->gns_first)
        printf("the noise scale grew %.0fx during training: a batch that grows with it (--batch-schedule) keeps the "
               "late steps efficient\n",
               res->gns_final / res->gns_first);
    const double b0 = tp->base_batch > 0 ? (double)tp->base_batch : b;
    if (bn >= b0)
        printf("--lr-scaling linear-then-sqrt from B0 = %.0f: linear up to the noise scale is --lr-scaling-knee %.3g "
               "(B_simple / B0)\n",
               b0, bn / b0);
    else
        printf("--lr-scaling linear-then-sqrt from B0 = %.0f: the noise scale is below B0, so scale the lr by the "
               "square root beyond B0 (--lr-scaling-knee 1, the smallest, or --lr-scaling sqrt)\n",
               b0);
}
