#!/bin/bash
# Bad input through the CLI: every case must print exactly one line on stderr
# starting with "optimlab:", nothing on stdout, exit with status 2 (bad input;
# never a crash), and must not create the --out directory. Positive controls
# (tiny real runs on generated files) make sure the failures are the inputs'.
#
# usage: test_cli_errors.sh path/to/optimlab
set -u
OL=${1:?usage: test_cli_errors.sh path/to/optimlab}
T=$(mktemp -d "${TMPDIR:-/tmp}/optimlab-cli-XXXXXX")
trap 'rm -rf "$T"' EXIT
checks=0
fails=0

fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

show() { # the captured output, for failure messages
    echo "  stdout: $(head -c 300 "$T/stdout" | tr '\n' '|')" >&2
    echo "  stderr: $(head -c 300 "$T/stderr" | tr '\n' '|')" >&2
}

# expect_bad LABEL ARGS... : bad input; the run directory is $T/out
expect_bad() {
    local label=$1
    shift
    rm -rf "$T/out"
    "$OL" "$@" >"$T/stdout" 2>"$T/stderr"
    local rc=$? bad=0
    checks=$((checks + 1))
    if [ $rc -ge 128 ]; then
        fail "$label: crashed (exit status $rc)"
        bad=1
    elif [ $rc -ne 2 ]; then
        fail "$label: exit status $rc, expected 2"
        bad=1
    fi
    local lines
    lines=$(wc -l <"$T/stderr")
    if [ "$lines" -ne 1 ]; then
        fail "$label: $lines lines on stderr, expected exactly 1"
        bad=1
    elif ! head -n 1 "$T/stderr" | grep -q '^optimlab: .'; then
        fail "$label: stderr does not start with 'optimlab: '"
        bad=1
    fi
    if [ -s "$T/stdout" ]; then
        fail "$label: printed on stdout"
        bad=1
    fi
    if [ -e "$T/out" ]; then
        fail "$label: created the --out directory"
        bad=1
    fi
    [ $bad -eq 0 ] || show
    return 0
}

# expect_msg LABEL PATTERN : the last case's message matches PATTERN (grep -E)
expect_msg() {
    checks=$((checks + 1))
    if ! grep -qE -- "$2" "$T/stderr"; then
        fail "$1: message does not match '$2': $(head -c 300 "$T/stderr")"
    fi
}

# expect_ok LABEL ARGS... : a valid command; exit 0, stderr empty
expect_ok() {
    local label=$1
    shift
    "$OL" "$@" >"$T/stdout" 2>"$T/stderr"
    local rc=$?
    checks=$((checks + 1))
    if [ $rc -ne 0 ] || [ -s "$T/stderr" ]; then
        fail "$label: exit status $rc (expected 0) or output on stderr"
        show
    fi
}

# ---- generated data files -------------------------------------------------------------------
be32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }
idx_images() { # N H W -> stdout
    printf '\x00\x00\x08\x03'
    be32 "$1"
    be32 "$2"
    be32 "$3"
    head -c $(($1 * $2 * $3)) /dev/urandom
}
idx_labels() { # N -> stdout, labels i % 10
    printf '\x00\x00\x08\x01'
    be32 "$1"
    local i
    for ((i = 0; i < $1; i++)); do printf "\\x$(printf %02x $((i % 10)))"; done
}
mnist_dir() { # DIR NTRAIN NTEST, gzip-compressed
    mkdir -p "$1"
    idx_images "$2" 28 28 | gzip -c >"$1/train-images-idx3-ubyte.gz"
    idx_labels "$2" | gzip -c >"$1/train-labels-idx1-ubyte.gz"
    idx_images "$3" 28 28 | gzip -c >"$1/t10k-images-idx3-ubyte.gz"
    idx_labels "$3" | gzip -c >"$1/t10k-labels-idx1-ubyte.gz"
}
cifar_batch() { # FILE NRECORDS [LABEL]
    local r
    for ((r = 0; r < $2; r++)); do
        printf "\\x$(printf %02x "${3:-$((r % 10))}")"
        head -c 3072 /dev/urandom
    done >"$1"
}
cifar_dir() { # DIR
    mkdir -p "$1"
    local f
    for f in 1 2 3 4 5; do cifar_batch "$1/data_batch_$f.bin" 4; done
    cifar_batch "$1/test_batch.bin" 4
}

mnist_dir "$T/good" 16 8
mnist_dir "$T/garbage" 16 8
echo "this is not an IDX file" >"$T/garbage/train-images-idx3-ubyte.gz"
mnist_dir "$T/rawgarbage" 16 8
rm "$T/rawgarbage/train-images-idx3-ubyte.gz"
head -c 200 /dev/urandom >"$T/rawgarbage/train-images-idx3-ubyte"
mnist_dir "$T/truncgz" 16 8
idx_images 16 28 28 | gzip -c | head -c 2000 >"$T/truncgz/train-images-idx3-ubyte.gz"
mnist_dir "$T/mismatch" 16 8
idx_labels 15 | gzip -c >"$T/mismatch/train-labels-idx1-ubyte.gz"
mnist_dir "$T/trailing" 16 8
{ idx_images 16 28 28; printf 'xx'; } | gzip -c >"$T/trailing/train-images-idx3-ubyte.gz"
mnist_dir "$T/nolabels" 16 8
rm "$T/nolabels/t10k-labels-idx1-ubyte.gz"
cifar_dir "$T/cifar"
cifar_dir "$T/cifar-size"
head -c 5000 /dev/zero >"$T/cifar-size/data_batch_2.bin"
cifar_dir "$T/cifar-label"
cifar_batch "$T/cifar-label/test_batch.bin" 3 10
cifar_dir "$T/cifar-missing"
rm "$T/cifar-missing/data_batch_3.bin"

TINY=(--steps 1 --batch-size 4 --train-subset 8 --test-subset 4 --threads 1 --quiet)
SYN=(--dataset synthetic --synthetic-size 16 --model mlp --widths 16 "${TINY[@]}")
O=(--out "$T/out")

# ---- positive controls --------------------------------------------------------------------------
rm -rf "$T/out"
expect_ok "synthetic control" train "${SYN[@]}" "${O[@]}"
checks=$((checks + 1))
grep -q '^done:' "$T/stdout" && [ -d "$T/out" ] || fail "synthetic control: no 'done:' line or no --out directory"
rm -rf "$T/out"
expect_ok "fashion-mnist files control" train --data-dir "$T/good" --model mlp --widths 16 "${TINY[@]}" "${O[@]}"
rm -rf "$T/out"
expect_ok "cifar10 files control" train --dataset cifar10 --data-dir "$T/cifar" --model mlp --widths 16 \
    "${TINY[@]}" "${O[@]}"
rm -rf "$T/out"
expect_ok "train --help" train --help
grep -q '^usage: optimlab train' "$T/stdout" || fail "train --help: no usage line"
expect_ok "--help" --help
grep -q '^usage: optimlab' "$T/stdout" || fail "--help: no usage line"
expect_ok "bench train --help" bench train --help
grep -q '^usage: optimlab bench train' "$T/stdout" || fail "bench train --help: no usage line"
expect_ok "bench --help" bench --help

# ---- data ------------------------------------------------------------------------------------------
expect_bad "missing dataset directory" train --data-dir "$T/nonexistent" "${TINY[@]}" "${O[@]}"
expect_msg "missing dataset directory" "$T/nonexistent"
expect_bad "data-dir is a file" train --data-dir "$T/good/train-labels-idx1-ubyte.gz" "${TINY[@]}" "${O[@]}"
expect_bad "corrupt IDX (gz name)" train --data-dir "$T/garbage" "${TINY[@]}" "${O[@]}"
expect_msg "corrupt IDX (gz name)" "train-images-idx3-ubyte"
expect_bad "corrupt IDX (raw)" train --data-dir "$T/rawgarbage" "${TINY[@]}" "${O[@]}"
expect_msg "corrupt IDX (raw)" "train-images-idx3-ubyte"
expect_bad "truncated gzip" train --data-dir "$T/truncgz" "${TINY[@]}" "${O[@]}"
expect_msg "truncated gzip" "train-images-idx3-ubyte.gz.*truncated"
expect_bad "images/labels count mismatch" train --data-dir "$T/mismatch" "${TINY[@]}" "${O[@]}"
expect_bad "trailing bytes" train --data-dir "$T/trailing" "${TINY[@]}" "${O[@]}"
expect_bad "missing test labels" train --data-dir "$T/nolabels" "${TINY[@]}" "${O[@]}"
expect_msg "missing test labels" "t10k-labels"
expect_bad "cifar10 size not a multiple of 3073" train --dataset cifar10 --data-dir "$T/cifar-size" "${TINY[@]}" "${O[@]}"
expect_msg "cifar10 size not a multiple of 3073" "data_batch_2.bin"
expect_bad "cifar10 label 10" train --dataset cifar10 --data-dir "$T/cifar-label" "${TINY[@]}" "${O[@]}"
expect_msg "cifar10 label 10" "test_batch.bin"
expect_bad "cifar10 missing data_batch_3" train --dataset cifar10 --data-dir "$T/cifar-missing" "${TINY[@]}" "${O[@]}"
expect_msg "cifar10 missing data_batch_3" "data_batch_3.bin"
expect_bad "cifar10 missing directory" train --dataset cifar10 --data-dir "$T/nonexistent" "${TINY[@]}" "${O[@]}"
expect_bad "unknown dataset" train --dataset imagenet "${TINY[@]}" "${O[@]}"
expect_msg "unknown dataset" "imagenet"
expect_bad "drop-last with batch > samples" train "${SYN[@]}" --batch-size 32 --drop-last "${O[@]}"

# ---- options -----------------------------------------------------------------------------------------
expect_bad "unknown model" train "${SYN[@]}" --model resnet-banana "${O[@]}"
expect_msg "unknown model" "resnet-banana"
expect_bad "model depth not 6n+2" train "${SYN[@]}" --model resnet21 "${O[@]}"
# a GPT on image data used to run on with labels per sample where it reads one per position
expect_bad "language model without text data" train --dataset synthetic --synthetic-size 16 --model gpt-mini \
  "${TINY[@]}" "${O[@]}"
expect_msg "language model without text data" "--dataset text or tokens"
expect_bad "unknown option" train "${SYN[@]}" --learning-rate 0.1 "${O[@]}"
expect_msg "unknown option" "learning-rate"
expect_bad "unexpected argument" train "${SYN[@]}" "${O[@]}" stray
expect_bad "option without its value" train "${SYN[@]}" "${O[@]}" --lr
expect_bad "batch size 0" train "${SYN[@]}" --batch-size 0 "${O[@]}"
expect_msg "batch size 0" "batch-size"
expect_bad "negative batch size" train "${SYN[@]}" --batch-size -4 "${O[@]}"
expect_bad "huge batch size" train "${SYN[@]}" --batch-size 99999999999999999999999 "${O[@]}"
expect_bad "negative learning rate" train "${SYN[@]}" --lr -0.1 "${O[@]}"
expect_msg "negative learning rate" "--lr"
expect_bad "non-numeric lr" train "${SYN[@]}" --lr fast "${O[@]}"
expect_bad "lr nan" train "${SYN[@]}" --lr nan "${O[@]}"
expect_bad "lr inf" train "${SYN[@]}" --lr inf "${O[@]}"
expect_bad "non-numeric batch size" train "${SYN[@]}" --batch-size 12x "${O[@]}"
expect_bad "fractional epochs" train "${SYN[@]}" --epochs 1.5 "${O[@]}"
expect_bad "non-numeric steps" train "${SYN[@]}" --steps ten "${O[@]}"
expect_bad "negative steps" train "${SYN[@]}" --steps -1 "${O[@]}"
expect_bad "non-numeric threads" train "${SYN[@]}" --threads two "${O[@]}"
expect_bad "non-numeric seed" train "${SYN[@]}" --seed x1 "${O[@]}"
expect_bad "non-numeric momentum" train "${SYN[@]}" --momentum high "${O[@]}"
expect_bad "momentum > 1" train "${SYN[@]}" --momentum 1.5 "${O[@]}"
expect_bad "label smoothing 1" train "${SYN[@]}" --label-smoothing 1 "${O[@]}"
expect_bad "val split 1.5" train "${SYN[@]}" --val-split 1.5 "${O[@]}"
expect_bad "epochs and steps 0" train "${SYN[@]}" --steps 0 --epochs 0 "${O[@]}"
for opt in --lr --batch-size --momentum --weight-decay --epochs --widths --model --dataset --seed --out --data-dir; do
    expect_bad "empty $opt" train "${SYN[@]}" "${O[@]}" "$opt" ""
    expect_msg "empty $opt" "${opt#--}"
    expect_bad "empty $opt=" train "${SYN[@]}" "${O[@]}" "$opt="
done
expect_bad "widths with a zero" train "${SYN[@]}" --widths 64,0,32 "${O[@]}"
expect_msg "widths with a zero" "widths"
expect_bad "widths 0" train "${SYN[@]}" --widths 0 "${O[@]}"
expect_bad "widths with an empty entry" train "${SYN[@]}" --widths 64,,32 "${O[@]}"
expect_bad "widths trailing comma" train "${SYN[@]}" --widths 64, "${O[@]}"
expect_bad "negative width" train "${SYN[@]}" --widths 64,-3 "${O[@]}"
expect_bad "unknown shortcut" train "${SYN[@]}" --model resnet20 --shortcut C "${O[@]}"
expect_bad "unknown backend" train "${SYN[@]}" --backend gpu "${O[@]}"
expect_bad "unknown optimizer" train "${SYN[@]}" --optimizer adamx "${O[@]}"
expect_bad "unknown schedule" train "${SYN[@]}" --schedule zigzag "${O[@]}"
expect_bad "unknown augmentation" train "${SYN[@]}" --augment rotate "${O[@]}"
expect_bad "unknown init" train "${SYN[@]}" --init he "${O[@]}"
expect_bad "unknown layout" train "${SYN[@]}" --layout nhwc "${O[@]}"
expect_bad "width multiplier 0" train "${SYN[@]}" --model resnet20 --width 0 "${O[@]}"
# model options that the chosen architecture does not have are errors, not ignored
SYNR=(--dataset synthetic --synthetic-size 16 --model resnet8 "${TINY[@]}")
expect_bad "--width for the MLP" train "${SYN[@]}" --width 2 "${O[@]}"
expect_bad "--no-skip for the MLP" train "${SYN[@]}" --no-skip "${O[@]}"
expect_bad "--zero-init-residual for the MLP" train "${SYN[@]}" --zero-init-residual "${O[@]}"
expect_bad "--layout for the MLP" train "${SYN[@]}" --layout plain "${O[@]}"
expect_bad "--shortcut for the MLP" train "${SYN[@]}" --shortcut B "${O[@]}"
expect_bad "--widths for a ResNet" train "${SYNR[@]}" --widths 16 "${O[@]}"
expect_bad "--shortcut for resnet18" train "${SYNR[@]}" --model resnet18 --shortcut B "${O[@]}"
expect_bad "--init-mode without kaiming" train "${SYN[@]}" --init-mode fan_out "${O[@]}"
expect_ok "--init-mode with kaiming" train "${SYN[@]}" --init kaiming-normal --init-mode fan_out "${O[@]}"
rm -rf "$T/out"
expect_ok "--width and --no-skip for a CIFAR ResNet" train "${SYNR[@]}" --width 2 --no-skip --shortcut B "${O[@]}"
rm -rf "$T/out"

# ---- commands and bench --------------------------------------------------------------------------------
expect_bad "unknown command" frobnicate
expect_bad "unknown benchmark" bench frobnicate
expect_bad "bench: unknown model" bench train --model foo --steps 1 --warmup 0
expect_bad "bench: bad input shape" bench train --input 1x28 --steps 1 --warmup 0
expect_bad "bench: batch size 0" bench train --batch-size 0 --steps 1 --warmup 0
expect_bad "bench: unknown option" bench train --out x --steps 1 --warmup 0
expect_bad "bench: empty value" bench train --model mlp --widths "" --steps 1 --warmup 0
expect_bad "bench: gpt option for an image model" bench train --model mlp --seq-len 16 --steps 1 --warmup 0
expect_bad "bench: negative seq-len" bench train --model gpt-mini --seq-len -1 --steps 1 --warmup 0
expect_bad "bench: vocabulary of 1" bench train --model gpt-mini --classes 1 --steps 1 --warmup 0
expect_ok "bench: gpt-mini" bench train --model gpt-mini --seq-len 16 --batch-size 2 --steps 1 --warmup 0 --threads 1 --json
grep -q '"tokens_per_s":[1-9]' "$T/stdout" || fail "bench train --model gpt-mini: no tokens/s in $(cat "$T/stdout")"
grep -q '"model":"gpt-mini".*"seq_len":16,"update":"adamw"' "$T/stdout" || fail "bench train --model gpt-mini: $(cat "$T/stdout")"

echo "test_cli_errors: $checks checks, $fails failed"
[ $fails -eq 0 ]
