/* Datasets and the batch loader.
 *
 * Images are kept as uint8 [n][c][h][w] with int32 labels; batches are
 * normalised float32 NCHW. Text is a stream of uint16 token ids cut into
 * windows (see ol_dataset.tokens). Every random choice (shuffle order, crop offset,
 * flip) is a hash of (seed, epoch, sample index), so an epoch can be replayed
 * from any position and results do not depend on threads. */
#ifndef OPTIMLAB_DATA_H
#define OPTIMLAB_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "optimlab/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OL_DATA_MAX_CHANNELS 4

typedef struct {
    char name[32];
    int64_t n;
    int c, h, w;
    int num_classes;
    uint8_t *images; /* [n][c][h][w] */
    int32_t *labels; /* [n] */
    float mean[OL_DATA_MAX_CHANNELS]; /* per-channel normalisation, in [0,1] pixel units */
    float std[OL_DATA_MAX_CHANNELS];
    /* A token stream (language models) instead of images: images and labels are
     * NULL, tokens holds ntokens ids below num_classes (the vocabulary). It is
     * cut into n = (ntokens - 1) / seq_len non-overlapping windows, as llm.c's
     * data loader does: sample i is tokens[i*T .. i*T + T] (T + 1 tokens), its
     * input the first T ids (floats, c = T, h = w = 1), its labels the T ids
     * after them. The loader shuffles windows per epoch as it shuffles images,
     * so a batch is a pure function of (seed, epoch, position). */
    uint16_t *tokens;
    int64_t ntokens;
    int seq_len;
} ol_dataset;

void ol_dataset_free(ol_dataset *d); /* frees the arrays; NULL-safe */

/* IDX files (MNIST / Fashion-MNIST), gzip-compressed or raw. */
int ol_dataset_load_idx(ol_ctx *ctx, const char *images_path, const char *labels_path, ol_dataset *out);
/* dir holds {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; train != 0 picks the training split. */
int ol_dataset_load_mnist_dir(ol_ctx *ctx, const char *dir, int train, ol_dataset *out);
/* CIFAR-10 binary version: dir holds data_batch_1..5.bin and test_batch.bin. */
int ol_dataset_load_cifar10(ol_ctx *ctx, const char *dir, int train, ol_dataset *out);
/* Synthetic classification data for tests and benchmarks: each class is a
 * fixed random template plus noise. Deterministic in seed. */
int ol_dataset_synthetic(ol_ctx *ctx, int64_t n, int c, int h, int w, int classes, uint64_t seed, ol_dataset *out);

/* Token streams. A copy of tokens[0..ntokens) with vocabulary `vocab`
 * (every id must be below it) cut into windows of seq_len + 1 tokens. */
int ol_dataset_from_tokens(ol_ctx *ctx, const uint16_t *tokens, int64_t ntokens, int vocab, int seq_len,
                           ol_dataset *out);
/* Byte-level text (vocabulary 256): the files concatenated in the given
 * order; the last val_fraction of the bytes (in (0, 1)) is the validation set,
 * the rest the training set. An empty or unreadable file, or a part too short
 * for one window of seq_len + 1 bytes, is OL_EIO / OL_EFORMAT / OL_ERANGE. */
int ol_dataset_load_text(ol_ctx *ctx, const char *const *paths, int npaths, int seq_len, double val_fraction,
                         ol_dataset *train, ol_dataset *val);
/* llm.c's token file: a header of 256 int32 (magic 20240520, version 1, the
 * token count), then that many uint16 tokens. A wrong magic or version, a
 * truncated or overlong body, or an id >= vocab is OL_EFORMAT. */
int ol_dataset_load_tokens(ol_ctx *ctx, const char *path, int vocab, int seq_len, ol_dataset *out);
/* Labels per sample: seq_len for a token stream, 1 for images. */
int ol_dataset_outputs_per_sample(const ol_dataset *d);
/* Bytes the dataset holds in memory. */
uint64_t ol_dataset_memory_bytes(const ol_dataset *d);

/* Keep the first n samples (n <= d->n). */
int ol_dataset_truncate(ol_ctx *ctx, ol_dataset *d, int64_t n);
/* Move a random (seeded) fraction of d into val; d keeps the rest, in order. */
int ol_dataset_split(ol_ctx *ctx, ol_dataset *d, double val_fraction, uint64_t seed, ol_dataset *val);
/* Per-channel mean and standard deviation of d's pixels (in [0,1] units). */
void ol_dataset_compute_stats(const ol_dataset *d, float *mean, float *std);
/* Set normalisation from another dataset (test uses the training statistics). */
void ol_dataset_copy_stats(ol_dataset *dst, const ol_dataset *src);

typedef struct {
    int crop_pad;  /* random crop with this much zero padding (0 = off) */
    int hflip;     /* random horizontal flip with p = 0.5 */
} ol_augment;

/* Fill x [n][c][h][w] and y [n] with samples idx[0..n), normalised and, when
 * aug is non-NULL, augmented with randomness keyed by (seed, epoch, idx[i]).
 * A token stream fills x [n][T] with the windows' ids and y [n][T] with the
 * next ids (aug ignored). */
void ol_dataset_fill(const ol_dataset *d, const int64_t *idx, int n, const ol_augment *aug, uint64_t seed,
                     int64_t epoch, float *x, int32_t *y);

typedef struct {
    int shuffle;      /* new permutation every epoch */
    int drop_last;    /* skip a final partial batch */
    ol_augment aug;
    uint64_t seed;
    int prefetch;     /* assemble the next batch on a background thread */
    int max_batch;    /* largest batch ever requested */
} ol_loader_params;

typedef struct ol_loader ol_loader;

int ol_loader_create(ol_ctx *ctx, const ol_dataset *d, const ol_loader_params *lp, ol_loader **out);
void ol_loader_free(ol_loader *l);
/* Start epoch `epoch` at sample position pos (0 for a fresh epoch). */
int ol_loader_start_epoch(ol_ctx *ctx, ol_loader *l, int64_t epoch, int64_t pos);
/* Next batch of up to `batch` samples. Returns the number of samples (0 when
 * the epoch is over) and points *x / *y at loader-owned buffers valid until
 * the next call. */
int ol_loader_next(ol_ctx *ctx, ol_loader *l, int batch, const float **x, const int32_t **y);
/* The same for data-parallel training: the global batch is split into size
 * contiguous shards and only shard `rank` ([n*rank/size, n*(rank+1)/size)) is
 * assembled; returns the global batch's size n, the shard's offset and size. */
int ol_loader_next_shard(ol_ctx *ctx, ol_loader *l, int batch, int rank, int size, const float **x, const int32_t **y,
                         int *shard_lo, int *shard_n);
/* Position in the current epoch (samples consumed). */
int64_t ol_loader_position(const ol_loader *l);
/* Number of batches of size `batch` in one epoch. */
int64_t ol_loader_batches_per_epoch(const ol_loader *l, int batch);

#ifdef __cplusplus
}
#endif
#endif
