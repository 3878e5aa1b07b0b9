#!/usr/bin/env bash
# The GPU figures of issue 7 in one run, on a machine with CUDA and the package's dependencies importable:
#   OUT=/some/dir bash benchmarks/gpu.sh
# 1. the device tests (the CUDA ones skip on CPU-only machines); 2. the bundled suite with the torch side on CUDA,
# in each case's dtype and again all in float32; 3. torch's gradients on CUDA against the CPU's, in ULPs.
set -u
OUT=${OUT:-/tmp/gpu-figures}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
python3 - <<'PY'
import torch, sympy, mpmath, numpy
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-",
      "sympy", sympy.__version__, "mpmath", mpmath.__version__, "numpy", numpy.__version__)
PY
timeout 150 python3 -m pytest -q tests/test_devices_compile.py > "$OUT/pytest_devices.txt" 2>&1
tail -n 3 "$OUT/pytest_devices.txt"
for dtype in "" float32; do
  timeout 200 python3 -m verifier run cases --device cuda -j 12 --no-progress ${dtype:+--dtype $dtype} \
    --json "$OUT/suite_cuda${dtype:+_$dtype}.json" > "$OUT/suite_cuda${dtype:+_$dtype}.txt" 2>&1
  echo "suite on cuda ${dtype:-in each case dtype}: exit $?"; tail -n 2 "$OUT/suite_cuda${dtype:+_$dtype}.txt"
done
timeout 200 python3 benchmarks/cuda_vs_cpu.py --seconds 150 > "$OUT/cuda_vs_cpu.md" 2>&1
tail -n 8 "$OUT/cuda_vs_cpu.md"
