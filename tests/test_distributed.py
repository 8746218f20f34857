"""Data-parallel training under torchrun (two CPU processes, gloo)."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from nmt.checkpoint import read_checkpoint

pytestmark = pytest.mark.slow


def _config(tiny_config: dict, path: Path, **train: object) -> Path:
    tiny_config["model"]["dropout"] = 0.0  # dropout masks differ between rank layouts
    tiny_config["train"].update({"valid_every": 3, "log_every": 1, "keep_last": 0, **train})
    path.write_text(yaml.safe_dump(tiny_config), encoding="utf-8")
    return path


def _train(nproc: int, config: Path, out: Path, *extra: str, check: bool = True) -> str:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launcher += [f"--nproc_per_node={nproc}", "-m", "nmt.cli"]
    command = [*launcher, "train", "--config", str(config), "--output-dir", str(out), *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stderr


def _params(run: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(run / "last.pt")["model"]


def test_two_processes_match_one_process_with_the_same_effective_batch(
    tiny_config: dict, tmp_path: Path
) -> None:
    two = _config(copy.deepcopy(tiny_config), tmp_path / "two.yaml", accumulate=1)
    _train(2, two, tmp_path / "two", "--max-steps", "6")
    one = _config(copy.deepcopy(tiny_config), tmp_path / "one.yaml", accumulate=2)
    _train(1, one, tmp_path / "one", "--max-steps", "6")

    state = read_checkpoint(tmp_path / "two" / "last.pt")["training"]
    fingerprints = state["replica_fingerprints"]
    assert len(fingerprints) == 2 and fingerprints[0] == fingerprints[1]  # replicas agree
    assert len(state["rng_per_rank"]) == 2
    distributed, single = _params(tmp_path / "two"), _params(tmp_path / "one")
    for name, value in single.items():
        torch.testing.assert_close(distributed[name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_a_resumed_two_process_run_continues_exactly(tiny_config: dict, tmp_path: Path) -> None:
    config = _config(tiny_config, tmp_path / "c.yaml")
    _train(2, config, tmp_path / "whole", "--max-steps", "6")
    _train(2, config, tmp_path / "halves", "--max-steps", "3")
    _train(2, config, tmp_path / "halves", "--max-steps", "6", "--resume")
    whole, halves = _params(tmp_path / "whole"), _params(tmp_path / "halves")
    for name, value in whole.items():
        assert torch.equal(halves[name], value), name
    assert read_checkpoint(tmp_path / "halves" / "last.pt")["step"] == 6


def test_resuming_with_another_process_count_fails_clearly(
    tiny_config: dict, tmp_path: Path
) -> None:
    config = _config(tiny_config, tmp_path / "c.yaml")
    _train(2, config, tmp_path / "run", "--max-steps", "2")
    stderr = _train(1, config, tmp_path / "run", "--max-steps", "4", "--resume", check=False)
    assert "written by 2 process(es)" in stderr


def test_a_dead_rank_stops_the_job(tiny_config: dict, tmp_path: Path) -> None:
    config = _config(tiny_config, tmp_path / "c.yaml", valid_every=10_000)
    out = tmp_path / "run"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command = [*launcher, "--nproc_per_node=2", "-m", "nmt.cli", "train"]
    command += ["--config", str(config), "--output-dir", str(out), "--max-minutes", "5"]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "curve.jsonl").exists():  # rank 0 has logged training steps
            assert job.poll() is None, job.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        workers = subprocess.run(
            ["pgrep", "-P", str(job.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        assert len(workers) == 2, workers
        subprocess.run(["kill", "-9", workers[1]], check=True)
        start = time.monotonic()
        _, stderr = job.communicate(timeout=120)
        assert job.returncode != 0
        assert time.monotonic() - start < 90  # stopped, not hung until the 5-minute limit
        assert "fail" in stderr.lower() or "error" in stderr.lower()
    finally:
        if job.poll() is None:
            job.kill()
