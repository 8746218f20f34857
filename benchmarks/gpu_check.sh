#!/usr/bin/env bash
# The GPU check (issue 18) on a machine with an NVIDIA GPU, on that machine's own Python
# and PyTorch: installs the wheels of .whl/ (benchmarks/gpu_wheels.sh makes them) where
# they are, puts the repository on the path and runs benchmarks/gpu_check.py, which
# writes its figures under --out. About 6 minutes on an H200 (limit: 8).
#
#     bash benchmarks/gpu_wheels.sh                      # here, once: .whl/ (5 MB)
#     mkdir -p .gpu_data && cp -r ../shared/data/multi30k .gpu_data/   # the data it reads
#     bash benchmarks/gpu_check.sh --out "$OUT"          # there
#     bash benchmarks/gpu_check.sh --out runs/gpu_check_cpu --device cpu \
#         --train-minutes 0.5 --equal-batch-minutes 0.3 --sentences 200   # tried here
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ -d .whl ] && ! "$PYTHON" -c "import fastapi" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/gpu_check_site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/gpu_check_site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# cuBLAS is deterministic only with a fixed workspace, set before its first use
export CUBLAS_WORKSPACE_CONFIG=:4096:8
# lingua's wheel (96 MB) does not travel to the GPU machine; detection is not measured
export NMT_DETECT_LANGUAGES=false
missing=$("$PYTHON" - <<'PY'
import importlib
names = ["torch", "fastapi", "uvicorn", "pydantic_settings", "limits", "sentencex",
         "multipart", "sacrebleu", "sentencepiece", "lxml", "aiohttp", "httpx", "yaml",
         "tqdm", "prometheus_client", "pytest", "google.protobuf"]
gone = []
for name in names:
    try:
        importlib.import_module(name)
    except ImportError as err:
        gone.append(f"{name} ({err})")
print(", ".join(gone))
PY
)
if [ -n "$missing" ]; then
    echo "gpu_check: missing Python packages: $missing (bash benchmarks/gpu_wheels.sh)" >&2
    exit 1
fi
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0))'
exec "$PYTHON" benchmarks/gpu_check.py "$@"
