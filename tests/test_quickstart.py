"""``nmt quickstart``: trains when there is no model, continues a stopped run, serves."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import free_port, server_process
from toy import tiny_config_dict

from nmt.checkpoint import save_checkpoint
from service.quickstart import training_state

MINIMAL = {"model_config": {}, "model": {}, "src_spm": b"spm", "tgt_spm": b"spm"}


@pytest.mark.parametrize(
    ("stopped", "best", "state"),
    [
        ("max_minutes 10.0 reached", True, "done"),
        ("early stopping: no BLEU gain", True, "done"),
        ("stopped by SIGINT", True, "unfinished"),
        (None, True, "unfinished"),  # a periodic save: killed while training
        ("max_steps 20 reached", False, "unfinished"),
    ],
)
def test_the_run_directory_says_whether_to_train(
    tmp_path: Path, stopped: str | None, best: bool, state: str
) -> None:
    assert training_state(tmp_path) == "none"
    scores = {"saved": "periodic"} if stopped is None else {"stopped": stopped}
    save_checkpoint({**MINIMAL, "scores": scores}, tmp_path / "last.pt")
    if best:
        save_checkpoint(MINIMAL, tmp_path / "best.pt")
    assert training_state(tmp_path) == state


def quickstart_command(corpus_dir: Path, tmp_path: Path, max_steps: int) -> list[str]:
    """``nmt quickstart`` on the toy corpus, its run in tmp_path/quick."""
    raw = tiny_config_dict(corpus_dir, tmp_path / "quick")
    raw["train"]["max_steps"] = max_steps
    config = tmp_path / "quick.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return [sys.executable, "-m", "nmt.cli", "quickstart", "--config", str(config)]


def test_quickstart_trains_then_serves_and_then_starts_at_once(
    corpus_dir: Path, tmp_path: Path
) -> None:
    quickstart = quickstart_command(corpus_dir, tmp_path, max_steps=12)
    for first in (True, False):
        port = free_port()
        command = [*quickstart, "--port", str(port)]
        with server_process(command, dict(os.environ), port, timeout=180) as server:
            answer = httpx.post(
                f"{server.base}/translate",
                data={"q": "the dog runs", "source": "xx", "target": "yy"},
            )
            assert answer.status_code == 200, answer.text
            output = server.output()
            assert f"Open http://127.0.0.1:{port}/ in a browser" in output
            assert f"curl -s http://127.0.0.1:{port}/translate" in output
            assert ("training the quick model" in output) is first
    assert training_state(tmp_path / "quick") == "done"


def test_as_a_one_shot_job_it_publishes_the_model_and_then_trains_nothing(
    corpus_dir: Path, tmp_path: Path
) -> None:
    """What compose's training service runs: train, copy the model where serve finds it."""
    model = tmp_path / "models" / "en-de.pt"
    command = quickstart_command(corpus_dir, tmp_path, max_steps=8)
    command += ["--no-serve", "--model-out", str(model)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stderr
    assert "training the quick model" in first.stderr
    assert model.read_bytes() == (tmp_path / "quick" / "best.pt").read_bytes()
    assert not list(model.parent.glob(".*partial"))
    shutil.rmtree(tmp_path / "quick")  # the model alone is enough to skip training
    again = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    assert "nothing to train" in again.stderr and not (tmp_path / "quick").exists()
