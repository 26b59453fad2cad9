/* optimlab: training neural networks with the optimizers, schedules and
 * data-parallel techniques of large-batch training. */
#ifndef OPTIMLAB_H
#define OPTIMLAB_H

#include "optimlab/core.h"
#include "optimlab/params.h"
#include "optimlab/model.h"
#include "optimlab/data.h"
#include "optimlab/optim.h"
#include "optimlab/optim_algo.h"
#include "optimlab/sched.h"
#include "optimlab/train.h"
#include "optimlab/checkpoint.h"
#include "optimlab/dist.h"
#include "optimlab/lrfind.h"
#include "optimlab/scaling.h"
#include "optimlab/landscape.h"
#include "optimlab/hessian.h"

#endif
