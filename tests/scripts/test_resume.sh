#!/usr/bin/env bash
# Exact resume: N epochs straight vs a run preempted after one epoch and
# resumed give bitwise-identical tensor data in the final checkpoint, and the
# same metrics apart from timing. Usage: test_resume.sh path/to/optimlab
set -euo pipefail
bin=$1
. "$(dirname "$0")/lib.sh" resume
common=(--model resnet8 --dataset synthetic --synthetic-size 640 --epochs 2 --batch-size 64 --threads 2 --quiet
        --augment crop,flip --crop-pad 2 --evals-per-epoch 2 --log-every 3)
resume_case sgd-nesterov 10 "${common[@]}" --optimizer sgd --lr 0.1 --momentum 0.9 --nesterov --schedule cosine \
  --warmup-epochs 0.5
resume_case sgd-step 10 "${common[@]}" --optimizer sgd --lr 0.05 --schedule step --step-size 1
ramp=(--schedule onecycle --batch-schedule ramp --max-batch-size 128 --batch-ramp-samples 640 --batch-ramp-increment 32
      --lr-scaling linear --base-batch-size 64 --micro-batch-size 32)
resume_case sgd-onecycle-ramp 10 "${common[@]}" --optimizer sgd --lr 0.05 "${ramp[@]}"
resume_case adamw-onecycle-ramp 10 "${common[@]}" --optimizer adamw --lr 3e-3 --weight-decay 0.05 "${ramp[@]}"
resume_case lamb-onecycle-ramp 10 "${common[@]}" --optimizer lamb --lr 1e-2 "${ramp[@]}"
resume_case sfadamw-onecycle-ramp 10 "${common[@]}" --optimizer sfadamw --lr 3e-3 --sf-warmup-steps 4 "${ramp[@]}"
exit $fail
