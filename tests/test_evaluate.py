"""``nmt evaluate`` scores exactly as sacreBLEU's own command line does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from toy import make_pairs

from nmt.cli import main


def _sacrebleu_cli(refs: list[Path], hyps: Path, *flags: str) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-m", "sacrebleu", *map(str, refs), "-i", str(hyps), *flags],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    parsed = json.loads(out)
    return parsed if isinstance(parsed, list) else [parsed]


def test_evaluate_equals_the_sacrebleu_command_line(
    toy_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = make_pairs(30, seed=9)
    src, ref, ref_cased, hyps = (tmp_path / n for n in ("src", "ref", "ref2", "hyps"))
    src.write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
    ref.write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
    # a second reference that differs in case only, so that -lc changes the score
    ref_cased.write_text("".join(t.title() + "\n" for _, t in pairs), encoding="utf-8")
    args = ["evaluate", "--checkpoint", str(toy_model), "--src", str(src)]
    args += ["--ref", str(ref), "--ref", str(ref_cased), "--output", str(hyps), "--json"]
    assert main(args) == 0
    ours = json.loads(capsys.readouterr().out)

    # -w 2: two decimals, as nmt evaluate reports
    bleu, chrf = _sacrebleu_cli([ref, ref_cased], hyps, "-m", "bleu", "chrf", "-w", "2")
    (bleu_lc,) = _sacrebleu_cli([ref, ref_cased], hyps, "-m", "bleu", "-lc", "-w", "2")
    assert ours["bleu"]["score"] == pytest.approx(bleu["score"], abs=1e-9)
    assert ours["chrf"]["score"] == pytest.approx(chrf["score"], abs=1e-9)
    assert ours["bleu_lc"]["score"] == pytest.approx(bleu_lc["score"], abs=1e-9)
    assert ours["bleu"]["signature"] == bleu["signature"]
    assert ours["bleu_lc"]["signature"] == bleu_lc["signature"]
    assert ours["chrf"]["signature"] == chrf["signature"]
    assert 20.0 < ours["bleu"]["score"] < 100.0  # a real model, not an empty output
