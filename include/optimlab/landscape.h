/* Loss landscapes (Li et al. 2018, "Visualizing the Loss Landscape of Neural
 * Nets"; Goodfellow et al. 2015 interpolation) on the flat parameter buffers.
 *
 * A direction is a float buffer with the layout of the model's parameter set
 * (ps->numel floats, padding zero). Grid points are parameter vectors
 *   w + a * d1 + b * d2        (random or PCA directions)
 *   (1 - a) * w + a * w2       (interpolation towards a second checkpoint)
 * evaluated in eval mode (BatchNorm with running statistics), as the
 * reference (tomgoldstein/loss-landscape) does.
 *
 * Intended usage:
 *   ol_landscape_random_direction(ps, w, seed, 0, 0, d1);    // filter-normalized
 *   ol_landscape_random_direction(ps, w, seed, 1, 0, d2);
 *   ol_landscape_params lp = ol_landscape_default_params();
 *   lp.dir[0] = d1; lp.dir[1] = d2; lp.data[0] = &train; lp.batch = 256; lp.workers = 4;
 *   ol_landscape *ls; ol_landscape_create(ctx, m, &lp, &ls); // m: the centre model
 *   ol_landscape_eval(ctx, ls, ab, npoints, res);            // any number of calls
 *   ol_landscape_free(ls);
 * The landscape keeps pointers to everything in lp (directions, datasets):
 * they must outlive it. */
#ifndef OPTIMLAB_LANDSCAPE_H
#define OPTIMLAB_LANDSCAPE_H

#include <stdint.h>

#include "optimlab/core.h"
#include "optimlab/data.h"
#include "optimlab/model.h"
#include "optimlab/params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Filter-wise normalization (the reference's normalize_directions_for_weights
 * with norm='filter'): in every tensor of two or more dimensions each filter
 * (slice along the first dimension: a conv output channel, a linear row) of
 * dir is rescaled to the norm of the same filter of weights,
 * d_f *= |w_f| / (|d_f| + 1e-10). One-dimensional tensors (biases, BatchNorm
 * gamma and beta) are set to zero (ignore='biasbn', the default), or with
 * include_bn_bias to the weights themselves, as the reference does. */
void ol_landscape_filter_normalize(const ol_paramset *ps, const float *weights, float *dir, int include_bn_bias);

/* A Gaussian direction N(0, 1) per element, drawn from (seed, index, tensor)
 * and filter-normalized against weights. Same arguments, same direction. */
void ol_landscape_random_direction(const ol_paramset *ps, const float *weights, uint64_t seed, int index,
                                   int include_bn_bias, float *dir);

/* The two principal directions of a training trajectory (the reference's
 * setup_PCA_directions): rows traj[i] - centre (1-D tensors zeroed unless
 * include_bn_bias), centred over the rows, their top two principal components
 * (unit vectors, the largest-magnitude entry of each left singular vector
 * positive, as sklearn's svd_flip). xy[2i], xy[2i+1]: each row projected on
 * them (the reference's project_2D 'cos'); ratio: explained variance ratios.
 * Needs m >= 3 rows spanning two dimensions (OL_EINVAL otherwise). */
int ol_landscape_pca(ol_ctx *ctx, const ol_paramset *ps, const float *centre, const float *const *traj, int m,
                     int include_bn_bias, float *dir1, float *dir2, double *xy, double ratio[2]);

typedef struct {
    const float *dir[2];     /* d1, d2 (ps layout); dir[1] NULL for a line */
    const float *to_params;  /* interpolation target w2 (replaces dir[0]); NULL: directions */
    const float *to_buffers; /* its BatchNorm statistics, interpolated too (the reference's 'states') */
    const ol_dataset *data[2]; /* up to two sets to evaluate at every point (NULL: none) */
    int batch;                 /* evaluation batch size */
    int workers;               /* model replicas evaluating points in parallel, one thread each */
} ol_landscape_params;

ol_landscape_params ol_landscape_default_params(void);

typedef struct ol_landscape ol_landscape;

/* Replicas of m (architecture, parameters and BatchNorm statistics as they
 * are now: the centre). Each replica holds its own activations for lp->batch
 * samples; ol_landscape_memory_bytes says how much all hold. */
int ol_landscape_create(ol_ctx *ctx, ol_model *m, const ol_landscape_params *lp, ol_landscape **out);
void ol_landscape_free(ol_landscape *ls); /* NULL-safe */
size_t ol_landscape_memory_bytes(const ol_landscape *ls);

/* Evaluate n points: ab[2i], ab[2i+1] are (a, b) (b ignored for a line).
 * res[4i..4i+3] = loss and accuracy on data[0], loss and accuracy on data[1]
 * (NAN where a set is absent). Each point is computed by one replica on one
 * thread, so results do not depend on the number of workers, ranks or the
 * order of points. */
int ol_landscape_eval(ol_ctx *ctx, ol_landscape *ls, const double *ab, int n, double *res);

#ifdef __cplusplus
}
#endif
#endif
