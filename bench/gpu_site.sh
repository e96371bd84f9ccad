#!/usr/bin/env bash
# Packs the Python packages BabelCall needs beyond what a CUDA/PyTorch image already has (numpy,
# onnxruntime, tokenizers, huggingface_hub, psutil, prometheus-client, threadpoolctl, matplotlib) into
# one xz tarball, for GPU hosts that cannot reach a package registry (the lent benchmark machines,
# air-gapped hospital servers). Run it where PyPI is reachable:
#
#   bench/gpu_site.sh OUT.tar.xz [PYTHON_VERSION]      (default 3.12, the lent GPU machines' Python)
#
# On the GPU host: tar -xJf OUT.tar.xz -C /tmp && export PYTHONPATH=/tmp/gpusite:$PWD
# The versions are the ones recorded with the GPU results in bench/RESULTS.md; ~59 MB.
set -euo pipefail
out=$(realpath "$1") py=${2:-3.12}
python=${PYTHON:-python3}
packages=(
    ctranslate2==4.8.5 faster-whisper==1.2.1 av==18.1.0 aiortc==1.16.0 aioice==0.13.0 pylibsrtp==1.0.0
    pyee==16.0.1 google-crc32c==1.9.0 ifaddr==0.2.0 dnspython==2.9.2 cryptography==50.0.2
    pyopenssl==26.4.0 cffi==2.1.1 pycparser==3.12 aiohttp==3.14.5 aiohappyeyeballs==2.7.1
    aiosignal==1.4.0 frozenlist==1.8.0 multidict==7.2.1 propcache==0.5.4 yarl==1.25.1
)
platforms=()
for tag in manylinux_2_{17,24,27,28,31,34}_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$tag")
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$py" \
    --implementation cp "${platforms[@]}" -d "$work/wheels" "${packages[@]}"
mkdir "$work/gpusite"
# A wheel is a zip laid out as site-packages; unpacking it is an install without pip, which cannot
# install wheels for another Python version than its own.
for wheel in "$work"/wheels/*.whl; do
    "$python" -m zipfile -e "$wheel" "$work/gpusite"
done
tar -C "$work" -cf - gpusite | xz -9 -T0 > "$out"
ls -l "$out"
