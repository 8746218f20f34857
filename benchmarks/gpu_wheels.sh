#!/usr/bin/env bash
# Wheels for benchmarks/gpu_check.sh on a GPU machine that has no package index: the
# project's dependencies that its image lacks (its Python 3.12 has torch, numpy,
# sacrebleu, sentencepiece, lxml, httpx, aiohttp, pytest...), at the versions of this
# checkout's .venv, into .whl/ (git-ignored). lingua (96 MB) stays behind: the check
# serves with NMT_DETECT_LANGUAGES=false, which never imports it.
#
#     bash benchmarks/gpu_wheels.sh && du -sh .whl      # must stay well under 64 MiB
set -euo pipefail
cd "$(dirname "$0")/.."
NAMES=(fastapi starlette pydantic pydantic-core pydantic-settings python-dotenv
       annotated-types typing-inspection typing-extensions uvicorn httptools limits
       deprecated python-multipart sentencex opentelemetry-api)
pins=()
for name in "${NAMES[@]}"; do
    version=$(.venv/bin/python -m pip show "$name" | sed -n 's/^Version: //p')
    pins+=("$name==$version")
done
rm -rf .whl && mkdir .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl "${pins[@]}"
ls .whl
