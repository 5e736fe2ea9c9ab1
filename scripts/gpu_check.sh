#!/usr/bin/env bash
# GPU self-check of scm-bench, run as is from a checkout on one GPU (about 4 minutes; each step
# has a time limit, 7.5 minutes in all):
#
#     scripts/gpu_check.sh
#
# 1. the GPU (nvidia-smi -L, torch's view of it); 2. the CUDA tests (tests/test_cuda.py, and the
# interpreter tests of the Triton kernel); 3. the attention JVP benchmark on CUDA at N = 1024 ..
# 16384, printed as Markdown tables to paste into the README; then two hooks, each in its own
# section: the training-step benchmark on CUDA and the quickstart with device: cuda.
# Exit status: 2 without a usable GPU, 1 if any step failed or ran past its limit.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout, not an installed copy
status=0
section() { printf '\n==== %s ====\n' "$*"; }
run() {  # run LIMIT_SECONDS CMD...: a failing or timed-out step is reported, the rest still run
    local limit=$1; shift
    timeout "$limit" "$@"
    local rc=$?
    if [ "$rc" -eq 124 ]; then
        echo "FAILED (over its ${limit} s limit): $*"
    elif [ "$rc" -ne 0 ]; then
        echo "FAILED (exit $rc): $*"
    fi
    [ "$rc" -eq 0 ] || status=1
}

section "GPU"
nvidia-smi -L || { echo "nvidia-smi failed: no NVIDIA driver or GPU"; exit 2; }
python -c "import torch, triton; assert torch.cuda.is_available(), 'torch sees no CUDA device'; \
print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'triton', triton.__version__, \
'|', torch.cuda.get_device_name())" || exit 2

section "CUDA tests"
run 150 python -m pytest tests/test_cuda.py tests/test_attention_triton.py -q -rs \
    -p no:cacheprovider

section "Attention JVP benchmark on CUDA (Markdown for the README)"
run 120 python benchmarks/attention_gpu_table.py --seq-lens 1024 2048 4096 8192 16384

# ---------------------------------------------------------------------------------------------
# Hook: step benchmark on CUDA.
section "Step benchmark on CUDA"
if python benchmarks/step_table.py --help | grep -q -- "--device"; then
    run 90 python benchmarks/step_table.py --device cuda --rounds 10
else
    echo "skipped: benchmarks/step_table.py has no --device flag yet"
fi

# ---------------------------------------------------------------------------------------------
# Hook: quickstart with device: cuda. resources.gpu > 0 so that Ray gives the trials the GPU
# (the spec reserves none by default); four trials share it.
section "Quickstart with device: cuda"
SCM_BENCH=(scm-bench)
command -v scm-bench >/dev/null || SCM_BENCH=(python -m scm_bench.cli)
rm -rf /tmp/gpu_check_qs
run 120 "${SCM_BENCH[@]}" run ablations/quickstart.yaml --set device=cuda \
    --set resources.gpu=0.25 --out /tmp/gpu_check_qs

section "Done"
[ "$status" -eq 0 ] && echo "all steps passed" || echo "some steps FAILED (see above)"
exit "$status"
