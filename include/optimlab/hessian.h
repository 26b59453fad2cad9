/* Curvature of the training loss: Hessian-vector products, the top Hessian
 * eigenvalues (power iteration with deflation, as PyHessian) and the Hessian
 * trace (Hutchinson's estimator with Rademacher vectors).
 *
 * The loss is the mean softmax cross-entropy over a fixed set of samples
 * (every sample once, in order, no augmentation), with BatchNorm in eval mode:
 * the running statistics are constants, so the loss is a function of the
 * parameters alone and computing it changes nothing in the model. PyHessian
 * does the same (`self.model = model.eval()`).
 *
 * Hessian-vector products are central finite differences of the gradient,
 *   Hv ~ (g(w + t v) - g(w - t v)) / (2 t),   t = delta * max(|w|, 1) / |v|,
 * with the gradients summed over batches in double. ReLUs keep the on/off
 * pattern they have at w (ol_model_set_relu_pattern): the loss is then smooth
 * along the step and has at w the Hessian backpropagation (PyHessian's double
 * backward) sees; without it, every ReLU whose input changes sign within the
 * step adds a jump of the gradient divided by t, a bias and a noise that do
 * not vanish as t shrinks. delta (fd_step) is the relative size of the step:
 * the truncation error grows as delta^2, the float rounding of the gradients
 * (relative 1e-7 or so) divided by t as 1/delta; 1e-4 balances the two on
 * the MLPs and ResNets measured in docs/landscape.md (about 1e-5 relative in
 * v'Hv). Max-pooling choices are not frozen.
 *
 * Intended usage:
 *   ol_hessian_params hp = ol_hessian_default_params();
 *   hp.data = &train_subset; hp.batch = 256;
 *   ol_hessian *h; ol_hessian_create(ctx, m, &hp, &h);        // m: weights at which to look
 *   ol_linop op = ol_hessian_linop(h);                        // H as an operator
 *   ol_eigen_power(ctx, &op, k, &ep, eigvals, NULL, &info);   // top-k eigenvalues
 *   ol_trace_hutchinson(ctx, &op, &tp, &tr, NULL);            // trace with its standard error
 *   ol_hessian_free(h);
 * The Hessian keeps pointers to m and hp->data: they must outlive it. Every
 * product overwrites m's gradient buffer and restores m's parameters bitwise. */
#ifndef OPTIMLAB_HESSIAN_H
#define OPTIMLAB_HESSIAN_H

#include <stddef.h>
#include <stdint.h>

#include "optimlab/core.h"
#include "optimlab/data.h"
#include "optimlab/model.h"
#include "optimlab/params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A symmetric linear operator on R^n: out = A v. Returns 0 or a negative code.
 * layout (NULL: none) marks the padding of a parameter set: random vectors
 * are drawn on its tensors only, one stream per tensor, and stay zero in the
 * padding. */
typedef int (*ol_linop_fn)(ol_ctx *ctx, void *user, const double *v, double *out);
typedef struct {
    size_t n;
    ol_linop_fn apply;
    void *user;
    const ol_paramset *layout;
} ol_linop;

typedef struct {
    int max_iter;  /* products per eigenvalue at most (100, PyHessian's default) */
    double tol;    /* stop when |lambda_i - lambda_{i-1}| / (|lambda_{i-1}| + 1e-6) < tol (1e-3) */
    uint64_t seed; /* the random start vectors */
} ol_eigen_params;

ol_eigen_params ol_eigen_default_params(void);

typedef struct {
    int iters[16];     /* products used for eigenvalue i (i < 16) */
    int converged[16]; /* whether eigenvalue i met tol */
} ol_eigen_info;

/* The k eigenvalues of op of largest magnitude, by power iteration: each
 * start vector N(0, I) (stream: seed, i) is kept orthogonal to the
 * eigenvectors already found (Gram-Schmidt, PyHessian's deflation), and the
 * eigenvalue is the Rayleigh quotient v'Av. eigvals[k]; eigvecs (NULL: not
 * wanted) k rows of n, unit norm; info may be NULL. 1 <= k <= 16. */
int ol_eigen_power(ol_ctx *ctx, const ol_linop *op, int k, const ol_eigen_params *ep, double *eigvals,
                   double *eigvecs, ol_eigen_info *info);

typedef struct {
    int max_samples; /* Rademacher vectors at most (100) */
    int min_samples; /* before tol is checked (10) */
    double tol;      /* stop when stderr <= tol * |mean| (0.01; 0: always max_samples) */
    uint64_t seed;
} ol_trace_params;

ol_trace_params ol_trace_default_params(void);

typedef struct {
    double trace;  /* mean of z'Az over the samples */
    double std_err; /* standard error of that mean: sample standard deviation / sqrt(samples) */
    int samples;
} ol_trace_result;

/* Hutchinson's estimator: E[z'Az] = tr(A) for z with independent +-1 entries
 * (stream: seed, sample index). values (NULL: not wanted) receives each
 * sample's z'Az, up to max_samples of them. */
int ol_trace_hutchinson(ol_ctx *ctx, const ol_linop *op, const ol_trace_params *tp, ol_trace_result *out,
                        double *values);

/* Stochastic Lanczos quadrature, the eigenvalue density of PyHessian (Ghorbani et al. 2019; Ubaru
 * et al. 2017): per run, `steps` Lanczos steps with full reorthogonalisation from a normalised
 * Rademacher vector v (stream: seed, run). The tridiagonal matrix T's eigenvalues (Ritz values) are
 * the quadrature nodes, the squared first components of its eigenvectors the weights (summing to 1):
 * sum_j w_j f(theta_j) approximates v'f(A)v, exactly for polynomials of degree < 2 steps, and the
 * density of A's spectrum is their mean over runs, smoothed (ol_slq_density). The largest and
 * smallest nodes converge to the extreme eigenvalues first. Memory: steps vectors of n doubles. */
typedef struct {
    int steps;     /* Lanczos steps per run, at most n (100, PyHessian's iter) */
    int runs;      /* start vectors (1, PyHessian's n_v) */
    uint64_t seed;
} ol_slq_params;

ol_slq_params ol_slq_default_params(void);

/* nodes and weights: runs rows of steps, ascending nodes per row. A run whose Krylov space is
 * exhausted before `steps` (an invariant subspace: the next vector would be zero) stops there:
 * used[run] (NULL: not wanted) says how many nodes it has, the rest of its row is weight 0 at its
 * last node. */
int ol_eigen_slq(ol_ctx *ctx, const ol_linop *op, const ol_slq_params *p, double *nodes, double *weights,
                 int *used);

/* PyHessian's smoothing (density_generate): nbins points from the mean over runs of the smallest
 * node - 0.01 to the mean largest + 0.01, a Gaussian of variance sigma2 * max(1, range) per node,
 * weighted, averaged over runs, normalised to integrate to 1 on the grid. grid and density: nbins
 * values (nbins >= 2). */
int ol_slq_density(ol_ctx *ctx, const double *nodes, const double *weights, int runs, int steps, int nbins,
                   double sigma2, double *grid, double *density);

typedef struct {
    const ol_dataset *data; /* the samples the loss averages over */
    int batch;              /* samples per forward/backward pass (memory, not the result) */
    double fd_step;         /* delta above (1e-4) */
    int freeze_relu;        /* 1: ReLUs keep their pattern at the weights of creation (default); 0: free */
} ol_hessian_params;

ol_hessian_params ol_hessian_default_params(void);

typedef struct ol_hessian ol_hessian;

/* Checks that the model takes the data (image shape, classes) and that it is
 * a classifier with one label per sample. */
int ol_hessian_create(ol_ctx *ctx, ol_model *m, const ol_hessian_params *hp, ol_hessian **out);
void ol_hessian_free(ol_hessian *h); /* NULL-safe */

/* Length of the vectors: the parameter set's numel (padding included, zero). */
size_t ol_hessian_dim(const ol_hessian *h);

/* Mean loss and its gradient g[dim] (double) at the model's weights. */
int ol_hessian_gradient(ol_ctx *ctx, ol_hessian *h, double *g, double *loss);

/* hv = H v by central differences with the step t above, using fd_step
 * (<= 0: the params' fd_step). v's padding entries must be zero. */
int ol_hessian_vector_product(ol_ctx *ctx, ol_hessian *h, const double *v, double *hv, double fd_step);

/* H as an operator (fd_step from the params) for ol_eigen_power and
 * ol_trace_hutchinson; valid while h lives. */
ol_linop ol_hessian_linop(ol_hessian *h);

/* Keskar et al.'s (2017) epsilon-sharpness: with the box
 *   C = { y : |y_i| <= eps (|w_i| + 1) }  over every parameter,
 *   sharpness = 100 (max_{y in C} f(w + y) - f(w)) / (1 + f(w)).
 * Keskar et al. maximise with L-BFGS-B; here the maximum is approached by
 * projected sign-gradient ascent from y = 0 (the steepest ascent for a box,
 * as PGD adversarial attacks use): y <- clip(y + step * r * sign(g(w + y))),
 * r_i = eps (|w_i| + 1), `iters` gradient passes plus one at w, keeping the
 * highest loss seen. It is a lower bound of the maximum; for a small eps the
 * loss is linear in the box and the first corner reached is the maximum
 * f(w) + sum_i r_i |g_i|. The loss here is the true one: ReLUs are never
 * frozen, whatever the Hessian's params; the weights are restored bitwise. */
typedef struct {
    double eps;  /* the box's relative half-width (Keskar et al.: 1e-3 and 5e-4) */
    int iters;   /* ascent steps (20) */
    double step; /* each step moves each coordinate by step * r_i at most (0.25) */
} ol_eps_sharpness_params;

ol_eps_sharpness_params ol_eps_sharpness_default_params(void);

typedef struct {
    double loss;      /* f(w) */
    double max_loss;  /* the highest f(w + y) found in the box */
    double sharpness; /* 100 (max_loss - loss) / (1 + loss) */
    int best_iter;    /* the ascent step that found max_loss (0: none rose above f(w)) */
} ol_eps_sharpness_result;

int ol_hessian_eps_sharpness(ol_ctx *ctx, ol_hessian *h, const ol_eps_sharpness_params *p,
                             ol_eps_sharpness_result *out);

/* Gradient passes (forward + backward over all the samples) done so far. */
int64_t ol_hessian_passes(const ol_hessian *h);

#ifdef __cplusplus
}
#endif
#endif
