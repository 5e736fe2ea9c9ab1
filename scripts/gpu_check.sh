#!/usr/bin/env bash
# GPU self-check of scm-bench: one prepared call on a machine with one GPU that fetches nothing
# (Python with torch, Triton, numpy, pandas, scipy, statsmodels, seaborn, pytest; no Ray,
# pydantic, optuna or clean-fid). Under 10 minutes: each step has a time limit (595 s in all).
#
#     scripts/gpu_wheels.sh          # here, with a network: wheels/ for the missing packages
#     scripts/gpu_check.sh           # there, from the checkout, wheels/ carried along
#
# 0. packages: pydantic and PyYAML from wheels/ (pip --no-index --target .gpu_deps) when the
# interpreter lacks them; 1. the GPU; 2. the CUDA tests; 3. the attention JVP benchmark; 4. the
# training-step benchmark; 5. each paper preset (ablations/paper/) for a few dozen steps per
# phase on synthetic data: step time, memory, samples/s, achieved TFLOP/s and MFU against the
# compute plan; 6. the quickstart through Ray (skipped without Ray). A step that cannot run
# here says so in one line and is skipped. Everything measured is written as Markdown to
# $GPU_CHECK_MD (default gpu_check.md) for the README. Exit status: 2 without a usable GPU,
# 1 if any step failed or ran past its limit.
#
# Rehearsal without a GPU (docs/paper-scale.md): GPU_CHECK_DEVICE=cpu scripts/gpu_check.sh runs
# the same steps on the CPU, the presets shrunk to width 8 and 1 step (3x the time limits), the
# CUDA-only ones skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout, not an installed copy
MD=${GPU_CHECK_MD:-gpu_check.md}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
: > "$MD"
status=0
section() { printf '\n==== %s ====\n' "$*"; printf '\n### %s\n\n' "$*" >> "$MD"; }
skip() { echo "skipped: $*"; echo "skipped: $*" >> "$MD"; }
run() {  # run LIMIT_SECONDS CMD...: output to the terminal and $MD; failures reported, not fatal
    local limit=$1; shift
    timeout "$limit" "$@" 2>&1 | tee -a "$MD"
    local rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 124 ]; then
        echo "FAILED (over its ${limit} s limit): $*" | tee -a "$MD"
    elif [ "$rc" -ne 0 ]; then
        echo "FAILED (exit $rc): $*" | tee -a "$MD"
    fi
    [ "$rc" -eq 0 ] || status=1
}
has() { python -c "import $1" 2>/dev/null; }

section "Packages"
if has pydantic && has yaml && has sklearn; then
    echo "pydantic, PyYAML and scikit-learn already installed" | tee -a "$MD"
elif [ -d wheels ]; then  # scripts/gpu_wheels.txt: the packages, dependencies listed too
    run 60 python -m pip install -q --no-index --no-deps --find-links wheels \
        --target .gpu_deps $(cat scripts/gpu_wheels.txt)
    export PYTHONPATH="$PWD/.gpu_deps:$PYTHONPATH"
else
    skip "no wheels/ folder and no pydantic: run scripts/gpu_wheels.sh where a network is"
fi
python -c "import torch, sys; print('python', sys.version.split()[0], '| torch', \
torch.__version__)" | tee -a "$MD"

section "GPU"
if [ "$DEVICE" = cpu ]; then
    skip "rehearsal on the CPU (GPU_CHECK_DEVICE=cpu): no GPU checks"
else
    nvidia-smi -L || { echo "nvidia-smi failed: no NVIDIA driver or GPU"; exit 2; }
    python -c "import torch, triton; assert torch.cuda.is_available(), 'no CUDA device'; \
print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'triton', triton.__version__, \
'|', torch.cuda.get_device_name())" 2>&1 | tee -a "$MD" || exit 2
fi
has pydantic || { skip "everything below needs pydantic (the spec schema)"; exit 1; }

section "CUDA tests"
run 100 python -m pytest tests/test_cuda.py tests/test_attention_triton.py -q -rs \
    -p no:cacheprovider

section "Attention JVP benchmark on CUDA"
if [ "$DEVICE" = cpu ]; then
    skip "benchmarks/attention_gpu_table.py times CUDA kernels only"
else
    run 60 python benchmarks/attention_gpu_table.py --seq-lens 1024 4096 16384
fi

section "Training-step benchmark on $DEVICE"
rounds=5 scale=1
[ "$DEVICE" = cpu ] && rounds=1 scale=3  # rehearsal: one round, 3x the time limits
if has sklearn; then
    run $((45 * scale)) python benchmarks/step_table.py --device "$DEVICE" --rounds "$rounds"
else
    skip "benchmarks/step_table.py trains on scikit-learn's digits: no scikit-learn here"
fi

# Paper presets on synthetic data at a batch one GPU holds (the plan's memory column says
# why: scm-bench plan paper/cifar10); 40 timed steps per phase after 3 warm-up steps.
section "Paper presets on one GPU (synthetic data)"
steps=40 small=() tiny_zip=()
if [ "$DEVICE" = cpu ]; then  # rehearsal: the same calls, nets of width 8, 1 step
    steps=1
    small=(--set net.width=8 --set net.emb_dim=32 --set net.heads=1 --set net.depth=1)
    tiny_zip=(--set "zip=[{net.width: [8], net.emb_dim: [32], net.heads: [1],"`
              `" net.dropout: [0.0]}]" --set baseline=null --set "claims=[]" --set net.depth=1
              --set data.resolution=16)
fi
header=--header
for args in "paper/cifar10 80 train.batch_size=128 teacher.batch_size=128" \
            "paper/imagenet64_scaling 130 train.batch_size=32 teacher.batch_size=32" \
            "paper/imagenet64_xl 70 train.batch_size=32 teacher.batch_size=32"; do
    read -r preset limit b1 b2 <<< "$args"
    [ "$DEVICE" = cpu ] && b1=train.batch_size=4 b2=teacher.batch_size=4
    shrink=("${small[@]}")
    [ "$DEVICE" = cpu ] && [ "$preset" != paper/cifar10 ] && shrink+=(--set data.resolution=16)
    [ "$preset" = paper/imagenet64_scaling ] && shrink=("${tiny_zip[@]}")
    run $((limit * scale)) python benchmarks/preset_steps.py "$preset" --device "$DEVICE" \
        --synthetic --steps "$steps" --set "$b1" --set "$b2" "${shrink[@]}" $header
    header=
done

section "Quickstart with device: cuda (Ray)"
if has ray && has optuna; then
    rm -rf /tmp/gpu_check_qs
    run 50 python -m scm_bench.cli run ablations/quickstart.yaml --set device=cuda \
        --set resources.gpu=0.25 --out /tmp/gpu_check_qs
else
    skip "no Ray or Optuna here: scm-bench run needs them (pip install -e . on a full machine)"
fi

section "Done"
[ "$status" -eq 0 ] && echo "all steps passed" || echo "some steps FAILED (see above)"
echo "Markdown for the README: $MD"
exit "$status"
