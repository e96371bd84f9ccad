#!/usr/bin/env bash
# The GPU benchmark as recorded in bench/RESULTS.md: production-shaped models with seeded random weights
# ("synthetic weights: speed only") on one GPU, then the caption-latency sweep over concurrent speakers.
#
#   bench/gpu.sh OUT_DIR SPEAKER_COUNTS TOKENIZER_DIR AUDIO [mt] [-- BENCH_LOAD_ARGS...]
#
# TOKENIZER_DIR: a real multilingual Whisper directory (config.json, tokenizer.json, vocabulary.txt), e.g.
# the built-in base model (~/.local/share/babelcall/models/whisper-base); AUDIO: real speech to speak.
# With "mt" it also runs the translation speed benchmark. Arguments after "--" go to bench.load (e.g.
# --out DIR --label TEXT for a second configuration); the server inherits BABELCALL_* variables, so
# `BABELCALL_ASR_SPECULATIVE_FINALS=false bench/gpu.sh ...` compares settings. Models already built
# under OUT_DIR are reused. Needs the project's Python packages.
set -euo pipefail
out=$1 counts=$2 tokenizer=$3 audio=$4
shift 4
with_mt=""
if [[ "${1:-}" == mt ]]; then with_mt=mt; shift; fi
if [[ "${1:-}" == -- ]]; then shift; fi
python=${PYTHON:-python3}

# ctranslate2 4.8 wheels load CUDA 12's cuBLAS by name. On CUDA 13 hosts, CUDA 13's cuBLAS works under
# that name (checked with ctranslate2 4.8.5 on an H100, float16 and int8_float16).
if ! ldconfig -p | grep -q 'libcublas.so.12 '; then
    cublas=$(find / -name 'libcublas.so.13' -not -path '/proc/*' 2>/dev/null | head -1 || true)
    if [[ -n "$cublas" ]]; then
        mkdir -p /tmp/cublas12
        ln -sf "$cublas" /tmp/cublas12/libcublas.so.12
        ln -sf "$(dirname "$cublas")/libcublasLt.so.13" /tmp/cublas12/libcublasLt.so.12
        export LD_LIBRARY_PATH=/tmp/cublas12:$(dirname "$cublas"):${LD_LIBRARY_PATH:-}
        echo "gpu: using CUDA 13 cuBLAS as libcublas.so.12 ($cublas)"
    fi
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
mkdir -p "$out/models/translation"
if [[ ! -f "$out/models/whisper-large-v3-turbo/model.bin" ]]; then
    "$python" -m bench.synthetic_whisper build "$out/models/whisper-large-v3-turbo" --shape large-v3-turbo \
        --tokenizer-from "$tokenizer"
fi
# The translation speed sweep; without "mt", a minimal run that only builds the NLLB-600M-shaped model.
mt_model="$out/models/translation/nllb-600m-synthetic"
if [[ "$with_mt" == mt || ! -f "$mt_model/model.bin" ]]; then
    mt_args=(--batch-sizes 1 --targets 1 --sentences 4 --fanout sequential)
    [[ "$with_mt" == mt ]] && mt_args=(--batch-sizes 1,8,32 --targets 1,3,10 --fanout sequential,merged)
    "$python" -m bench.mt_speed --device cuda --compute-type float16 "${mt_args[@]}" \
        --model-dir "$mt_model" --out "$out/mt_speed"
fi
"$python" -m bench.load --speakers "$counts" --listeners 3 --seconds 30 --processes 8 --break-s 8 \
    --label "GPU, large-v3-turbo + NLLB-600M shapes: synthetic weights, speed only" \
    --audio "$audio" --out "$out/load" \
    --server-env BABELCALL_ASR_DEVICE=cuda --server-env BABELCALL_ASR_COMPUTE_TYPE=float16 \
    --server-env BABELCALL_WHISPER_MODEL="$out/models/whisper-large-v3-turbo" \
    --synthetic-tokens-per-s 3.5 \
    --server-env BABELCALL_MT_DEVICE=cuda --server-env BABELCALL_MT_COMPUTE_TYPE=float16 \
    --server-env BABELCALL_TRANSLATION_MODELS_DIR="$out/models/translation" "$@"
