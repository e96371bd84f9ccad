"""Decoder-only instruct models through ctranslate2.Generator, and device/compute-type errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mt_models import GENERATOR_TEMPLATE, build_generator, build_multilingual

from mt import (
    DeviceUnavailableError,
    GeneratorModel,
    ModelFamily,
    ModelLoadError,
    TranslationEngine,
    load_model,
)
from mt.model import check_device, explain_device_error
from protocol.captions import TranslationPath

TEXTS = ["Good morning, how are you feeling today?", "Take this twice a day.", "Thank you."]


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_generator(tmp_path_factory.mktemp("gen") / "tiny-llm-sp")


@pytest.fixture(scope="module")
def gen_hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_generator(tmp_path_factory.mktemp("gen") / "tiny-llm-hf", tokenizer="tokenizer.json")


def _with_metadata(src: Path, dst: Path, **changes: object) -> Path:
    shutil.copytree(src, dst)
    metadata = json.loads((dst / "babelcall.json").read_text())
    metadata.update(changes)
    (dst / "babelcall.json").write_text(json.dumps(metadata))
    return dst


@pytest.mark.parametrize("fixture", ["gen_dir", "gen_hf_dir"])
def test_generator_loads_and_translates_batches(fixture: str, request: pytest.FixtureRequest) -> None:
    model = load_model(request.getfixturevalue(fixture))
    assert isinstance(model, GeneratorModel) and model.family is ModelFamily.GENERATOR
    assert model.languages == {"en", "fr", "es", "ja"} and model.covers("en", "ja")
    assert not model.covers("en", "zh")
    batch = model.translate_batch(TEXTS, "en", "fr")
    assert len(batch) == 3 and all(isinstance(t, str) and t for t in batch)
    assert model.translate_batch(TEXTS, "en", "fr") == batch  # greedy: deterministic
    # Alone, each text decodes the same tokens; only the length bound (set by the longest text) differs.
    for text, batched in zip(TEXTS, batch, strict=True):
        alone = model.translate_batch([text], "en", "fr")[0]
        assert batched.startswith(alone[: min(len(alone), 5)])
    with pytest.raises(ValueError, match="does not translate"):
        model.translate_batch(TEXTS, "en", "zh")


def test_prompt_names_both_languages(gen_dir: Path) -> None:
    model = load_model(gen_dir)
    assert isinstance(model, GeneratorModel)
    assert model.prompt("Hi {there}", "en", "ja") == GENERATOR_TEMPLATE.format(
        source_name="English", target_name="Japanese", text="Hi {there}"
    )
    assert model.prompt("x", "en", "ja").endswith("Japanese:")


def test_single_token_stops_end_decoding_and_longer_stops_cut_the_text(gen_dir: Path, tmp_path: Path) -> None:
    free = load_model(gen_dir).translate_batch(TEXTS[:1], "en", "fr")[0]
    assert "," in free  # this seeded model emits commas
    comma = load_model(_with_metadata(gen_dir, tmp_path / "comma", stop=[","]))
    assert isinstance(comma, GeneratorModel) and "," in comma._end_tokens  # "," is one vocabulary token
    stopped = comma.translate_batch(TEXTS[:1], "en", "fr")[0]
    assert stopped == free[: free.index(",")].strip()

    stop = free[len(free) // 2 : len(free) // 2 + 3]
    cut = load_model(_with_metadata(gen_dir, tmp_path / "cut", stop=[stop]))
    assert cut.translate_batch(TEXTS[:1], "en", "fr")[0] == free[: free.index(stop)].strip()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prompt_template": "no text field"}, "prompt_template"),
        ({"prompt_template": "{text} {oops}"}, "unknown field"),
        ({"languages": None}, "languages"),
        ({"languages": ["en", "xx"]}, "fewer than two"),
        ({"stop": "</s>"}, "stop"),
    ],
)
def test_bad_generator_metadata_is_explained(
    gen_dir: Path, tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load_model(_with_metadata(gen_dir, tmp_path / "bad", **changes))


def test_generator_without_tokenizer_is_explained(gen_dir: Path, tmp_path: Path) -> None:
    bare = shutil.copytree(gen_dir, tmp_path / "bare")
    (bare / "tokenizer.model").unlink()
    with pytest.raises(ModelLoadError, match="no tokenizer"):
        load_model(bare)


async def test_engine_prefers_seq2seq_and_uses_the_generator_elsewhere(gen_dir: Path, tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    shutil.copytree(gen_dir, models_dir / "aa-llm")
    build_multilingual(models_dir / "nllb-en-fr", languages=["en", "fr"])
    engine = TranslationEngine.from_directory(models_dir)
    assert engine.model_names == ["nllb-en-fr", "aa-llm"]
    result = await engine.translate(TEXTS[0], "en", ["fr", "ja"])
    assert result["fr"].model == "nllb-en-fr" and result["ja"].model == "aa-llm"
    assert result["ja"].path is TranslationPath.MACHINE
    await engine.aclose()


# --- device and compute type ------------------------------------------------------------------------


def test_cuda_without_a_gpu_is_a_clear_error(gen_dir: Path, tmp_path: Path) -> None:
    import ctranslate2

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceUnavailableError, match=r"no usable GPU.*device cpu"):
        load_model(gen_dir, device="cuda", compute_type="float16")
    nllb = build_multilingual(tmp_path / "nllb", languages=["en", "fr"])
    with pytest.raises(DeviceUnavailableError, match="no usable GPU"):
        load_model(nllb, device="cuda", compute_type="int8_float16")
    # The engine skips the model with the reason in the log rather than failing start-up.
    assert TranslationEngine.from_directory(tmp_path, device="cuda").model_names == []


def test_unsupported_compute_type_and_device_are_named() -> None:
    with pytest.raises(DeviceUnavailableError, match="compute type 'float16' is not supported on cpu"):
        check_device("cpu", "float16")
    with pytest.raises(DeviceUnavailableError, match="unknown device 'tpu'"):
        check_device("tpu", "int8")
    check_device("cpu", "int8")


def test_missing_cublas_says_what_to_install() -> None:
    message = explain_device_error(
        RuntimeError("Library libcublas.so.12 is not found or cannot be loaded"), "cuda"
    )
    assert message is not None
    assert "nvidia-cublas-cu12" in message and "libcublas.so.13" in message and "LD_LIBRARY_PATH" in message
    assert explain_device_error(RuntimeError("out of memory"), "cpu") is None


def test_cublas_failure_at_translation_time_is_explained(gen_dir: Path) -> None:
    model = load_model(gen_dir)

    def missing_library(*args: object, **kwargs: object) -> object:
        raise RuntimeError("Library libcublas.so.12 is not found or cannot be loaded")

    model._generator = type("Broken", (), {"generate_batch": staticmethod(missing_library)})()  # type: ignore[assignment]
    with pytest.raises(DeviceUnavailableError, match="nvidia-cublas-cu12"):
        model.translate_batch(TEXTS[:1], "en", "fr")
