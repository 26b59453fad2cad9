/* Central-difference checks of analytic gradients, shared by the layer and
 * language-model gradchecks (test_gradcheck_layers, test_gradcheck_gpt). */
#ifndef OL_TEST_GRADCHECK_H
#define OL_TEST_GRADCHECK_H

#include <stddef.h>

#include "core/rng.h"

/* The loss at the current values (NaN when the forward fails). */
typedef double (*gc_loss_fn)(void *user);

/* Central differences of loss in *v at steps 1e-2, 1e-3, 1e-4, stopping at
 * the first that agrees with the analytic derivative an (l0: the loss at v):
 * the best err/tol (<= 1 passes), that step's difference in *fd. *v is
 * restored. */
double gc_fd_check(gc_loss_fn loss, void *user, float *v, double an, double l0, double *fd);

/* Checks g[j] against gc_fd_check of v[j]: every j < n when n <= cap, else
 * cap indices drawn from r. Each is a check (tu_checks); err/tol > 1 fails
 * with "label name[j]: analytic ... vs numeric ...". Returns the number
 * checked; *worst becomes the largest err/tol seen. */
int gc_check_values(gc_loss_fn loss, void *user, float *v, const float *g, size_t n, size_t cap, ol__rng *r,
                    double l0, const char *label, const char *name, double *worst);

#endif
