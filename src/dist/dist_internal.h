#ifndef OL_DIST_INTERNAL_H
#define OL_DIST_INTERNAL_H

#include "core/internal.h"
#include "optimlab/dist.h"

#ifdef OL_HAVE_MPI
#include <mpi.h>
#endif

struct ol_comm {
    int rank, size;
    int mpi;      /* a real MPI communicator */
    int owns_mpi; /* ol_comm_init called MPI_Init */
    ol_comm_stats stats;
#ifdef OL_HAVE_MPI
    MPI_Comm comm;
#endif
};

/* Add a collective's traffic (ring model) and time to the statistics. */
void ol__comm_account(ol_comm *c, size_t bytes, double seconds);

#endif
