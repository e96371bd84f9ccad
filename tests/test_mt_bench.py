"""bench/mt_quality.py's data loading and scoring, on a tiny random-weight model (scores meaningless)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from mt_models import build_multilingual

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import mt_quality


def test_loads_every_dev_set_aligned(shared_dir: Path) -> None:
    sets = mt_quality.load_sets(shared_dir / "data" / "dev" / "text", {"ntrex", "tico19", "wmt22"}, limit=5)
    names = [s.name for s in sets]
    assert sum(n.startswith("ntrex128 en-") for n in names) == 10
    assert sum(n.startswith("tico19") for n in names) == 12
    assert {"wmt22 en-ja", "wmt22 zh-en"} <= set(names) and len([n for n in names if "wmt22" in n]) == 6
    for test in sets:
        assert len(test.sources) == 5 and all(len(r) == 5 for r in test.references)
    zh_en = next(s for s in sets if s.name == "wmt22 zh-en")
    assert len(zh_en.references) == 2  # both reference translations are used
    tico = next(s for s in sets if s.name == "tico19 en-es")
    assert tico.sources[0].startswith("and all chest pain") and "dolor de pecho" in tico.references[0][0]


def test_scores_a_model_end_to_end(shared_dir: Path, tmp_path: Path) -> None:
    build_multilingual(tmp_path / "models" / "nllb-tiny")
    out = tmp_path / "out"
    code = mt_quality.main(
        ["--models-dir", str(tmp_path / "models"), "--limit", "2", "--sets", "wmt22", "--out", str(out)]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())["results"]
    assert len(results) == 6 and {r["model"] for r in results} == {"nllb-tiny"}
    assert all(0 <= r["bleu"] <= 100 and 0 <= r["chrf"] <= 100 for r in results)
    assert {r["bleu_tokenize"] for r in results} == {"char", "13a", "zh"}


def test_perfect_hypotheses_score_100() -> None:
    test = mt_quality.TestSet("t", "en", "fr", ["a"], [["Le chat est sur le tapis."]])
    assert mt_quality.score(["Le chat est sur le tapis."], test) == {"bleu": 100.0, "chrf": 100.0}


def test_no_model_installed_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mt_quality.main(["--models-dir", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) == 2
    assert f"no translation model installed in {tmp_path / 'none'}" in capsys.readouterr().err
