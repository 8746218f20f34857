"""Training killed at any moment (SIGKILL: no handler runs) loses nothing it saved,
never leaves best.pt behind last.pt, and resumes to the very parameters of a run that
was never killed."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from nmt.checkpoint import read_checkpoint
from nmt.process import StopRequest
from training.config import validate_config
from training.trainer import Trainer

STEPS = 10  # validations at 4, 8 and 10, the end of the budget (tiny_config: valid_every 4)

# Run in a child process: train with a fault planted, the child SIGKILLs itself there.
FAULTY_RUN = textwrap.dedent(
    """
    import json, os, signal, sys
    import torch
    import nmt.checkpoint
    from training.config import validate_config
    from training.trainer import Trainer

    config, fault, at = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)

    if fault == "step":  # in the middle of training step `at`
        step = Trainer.train_step
        def train_step(self, batches, n, *rest):
            if n == at:
                die()
            return step(self, batches, n, *rest)
        Trainer.train_step = train_step
    elif fault == "validation":  # inside validation number `at`
        validate, calls = Trainer.validate, []
        def validate_once(self):
            calls.append(1)
            if len(calls) == at:
                die()
            return validate(self)
        Trainer.validate = validate_once
    elif fault == "write":  # half-way through checkpoint write number `at`
        save, calls = torch.save, []
        def half_save(obj, f, *args, **kwargs):
            calls.append(1)
            if len(calls) == at:
                f.write(b"half a checkpoint")
                f.flush()
                die()
            return save(obj, f, *args, **kwargs)
        nmt.checkpoint.torch.save = half_save
    torch.manual_seed(0)
    Trainer(validate_config(config)).run(max_steps=int(sys.argv[4]))
    """
)


def _kill_run(config: dict, fault: str, at: int) -> None:
    command = [sys.executable, "-c", FAULTY_RUN, json.dumps(config), fault, str(at), str(STEPS)]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]


def _params(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["model"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory, corpus_dir_module: Path) -> Path:
    """The run that nobody killed."""
    from toy import tiny_config_dict

    raw = tiny_config_dict(corpus_dir_module, tmp_path_factory.mktemp("straight"))
    torch.manual_seed(0)
    Trainer(validate_config(raw)).run(max_steps=STEPS)
    return Path(raw["output_dir"]) / "last.pt"


@pytest.fixture(scope="module")
def corpus_dir_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toy import make_pairs, write_split

    directory = tmp_path_factory.mktemp("data")
    write_split(directory, "train", make_pairs(80, seed=1), gz=True)
    write_split(directory, "val", make_pairs(12, seed=2))
    return directory


# writes: 1 = last.pt at the start, 2 = best.pt at step 4, 3 = last.pt at step 4,
# 4 = step_4.pt, 5 = best.pt at step 8 (if better), ...
@pytest.mark.parametrize(
    ("fault", "at"),
    [("step", 3), ("validation", 2), ("write", 1), ("write", 3), ("write", 5)],
)
def test_a_killed_run_resumes_to_the_uninterrupted_parameters(
    fault: str, at: int, straight: Path, corpus_dir_module: Path, tmp_path: Path
) -> None:
    from toy import tiny_config_dict

    raw = tiny_config_dict(corpus_dir_module, tmp_path / "run")
    _kill_run(copy.deepcopy(raw), fault, at)
    out = tmp_path / "run"
    if fault == "write":
        assert list(out.glob(".*.tmp")), "the kill left a half-written temporary file"
    if (out / "last.pt").exists():
        _assert_best_not_behind_last(out)
    # from its first moment on, a run has a last.pt to resume from
    assert (out / "last.pt").exists() or (fault, at) == ("write", 1)
    torch.manual_seed(0)
    resumed = Trainer(validate_config(raw), resume=(out / "last.pt").exists())
    resumed.run(max_steps=STEPS)
    assert not list(out.glob(".*.tmp")), "stale temporary files are swept at start"
    _assert_best_not_behind_last(out)
    a, b = _params(straight), _params(out / "last.pt")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def _assert_best_not_behind_last(out: Path) -> None:
    progress = read_checkpoint(out / "last.pt")["training"]["progress"]
    if progress["best_bleu"] < 0:
        return  # no validation yet
    best = read_checkpoint(out / "best.pt")
    assert best["step"] >= progress["best_step"]
    assert best["scores"]["valid_bleu"] >= progress["best_bleu"]


def test_a_kill_before_the_first_validation_still_leaves_something_to_resume(
    corpus_dir_module: Path, tmp_path: Path
) -> None:
    from toy import tiny_config_dict

    raw = tiny_config_dict(corpus_dir_module, tmp_path / "run")
    raw["train"]["save_every_minutes"] = 1e-6  # every step
    _kill_run(raw, "step", 3)
    last = read_checkpoint(tmp_path / "run" / "last.pt")
    assert last["step"] == 2  # the periodic save after step 2; step 3 was under way
    assert not (tmp_path / "run" / "best.pt").exists()


def test_a_second_signal_stops_at_once() -> None:
    stop = StopRequest()
    before = signal.getsignal(signal.SIGTERM)
    with stop.installed():
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.reason == "stopped by SIGINT"  # the first one lets the step finish
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


def test_building_and_running_a_trainer_leaves_the_process_as_it_was(
    corpus_dir_module: Path, tmp_path: Path
) -> None:
    """Threads, signal handlers and the allocator are the entry point's to set."""
    from toy import tiny_config_dict

    raw = tiny_config_dict(corpus_dir_module, tmp_path / "run")
    raw["train"]["num_threads"] = 1
    threads = torch.get_num_threads()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    trainer = Trainer(validate_config(raw))
    assert torch.get_num_threads() == threads
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    trainer.run(max_steps=2)
    assert torch.get_num_threads() == threads
    assert {s: signal.getsignal(s) for s in handlers} == handlers
