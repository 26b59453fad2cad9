# Shared set-up of the MPI test scripts, sourced after `bin` is set: skips
# (exit 77) without mpirun, lets Open MPI run as root and oversubscribe, and
# gives the mpi=(mpirun ...) command and what lib.sh gives ("$tmp", "$py",
# fail=0, ok/bad, compare_params). Usage: . mpi_env.sh TMP-NAME
command -v mpirun >/dev/null || { echo "skip: no mpirun"; exit 77; }
"$bin" version >/dev/null || exit 1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# Open MPI leaks in MPI_Init/MPI_Finalize: under make check-sanitize, LeakSanitizer would turn every
# MPI process's exit status into 1 (the single-process tests keep the leak checks)
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
mpi=(mpirun --oversubscribe)
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$1"
