#!/usr/bin/env bash
# Run HERE (a machine with pip access) before a device call: fetches, into .whl/ (git-ignored),
# the Python 3.12 wheels the lent GPU machine's image lacks or has at other versions, pinned to
# what this machine tests with. scripts/gpu_check.sh installs them there with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir .whl
pins=()
for name in datasets dill multiprocess tomli_w pydantic pydantic_core annotated_types \
            typing_inspection transformers huggingface_hub tokenizers accelerate safetensors; do
  v=$(python3 -c "import importlib.metadata as m; print(m.version('$name'))")
  pins+=("$name==$v")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "${pins[@]}"
du -sh .whl
ls .whl
