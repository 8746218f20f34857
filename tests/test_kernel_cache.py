"""Training bounds oneDNN's cache of compiled kernels (``nmt.process``), which otherwise
keeps one kernel for each of the last 1,024 input shapes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nmt.process import ONEDNN_CACHE_CAPACITY

# A convolution of one shape, then of enough other shapes to fill a bounded cache
# (each adds a convolution and an output reorder), then of the first shape again:
# oneDNN's verbose log says whether that last kernel was compiled again (cache_miss).
PROGRAM = """
import sys
import torch
import torch.nn.functional as F
from nmt.process import bound_kernel_cache
if sys.argv[1] == "bounded":
    bound_kernel_cache()
torch.set_num_threads(1)
weight = torch.randn(8, 3, 3, 3)
for size in [8, *range(9, 9 + int(sys.argv[2])), 8]:
    F.conv2d(torch.randn(2, 3, size, size), weight)  # batch 2: oneDNN, not the native kernel
"""
FIRST_SHAPE = "mb2_ic3oc8_ih8oh6"


def first_shape_lookups(mode: str, other_shapes: int, capacity: str | None = None) -> list[str]:
    """How oneDNN's cache answered each request for the first convolution's kernel."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONEDNN_", "DNNL_"))}
    env["ONEDNN_VERBOSE"] = "all"
    if capacity is not None:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = capacity
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode, str(other_shapes)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [
        field.removeprefix("create:")
        for line in done.stdout.splitlines()
        if ",convolution," in line and FIRST_SHAPE in line
        for field in line.split(",")
        if field.startswith("create:cache_")
    ]


def test_a_kernel_evicted_by_more_shapes_than_the_bound_is_compiled_again() -> None:
    shapes = ONEDNN_CACHE_CAPACITY  # two cache entries each: well past the bound
    assert first_shape_lookups("bounded", shapes) == ["cache_miss", "cache_miss"]
    # oneDNN's default (1,024) still holds it: the bound is what evicted it
    assert first_shape_lookups("unbounded", shapes) == ["cache_miss", "cache_hit"]


def test_an_operators_capacity_wins_over_the_bound() -> None:
    assert first_shape_lookups("bounded", 4, capacity="2") == ["cache_miss", "cache_miss"]
    assert first_shape_lookups("bounded", 4, capacity="1024") == ["cache_miss", "cache_hit"]
    assert first_shape_lookups("bounded", 4) == ["cache_miss", "cache_hit"]


def test_training_sets_the_bound_and_translating_leaves_onednns_default(
    tiny_config: dict, toy_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nmt.cli import main
    from training.command import train
    from training.config import validate_config

    # set, then removed: monkeypatch restores the variable as it was after the test
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "1024")
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY")
    source = Path(tiny_config["output_dir"]).parent / "source.txt"
    source.write_text("a b c\n", encoding="utf-8")
    assert main(["translate", "--checkpoint", str(toy_model), "--input", str(source)]) == 0
    assert "ONEDNN_PRIMITIVE_CACHE_CAPACITY" not in os.environ
    train(validate_config(tiny_config), resume=False, max_steps=1)
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(ONEDNN_CACHE_CAPACITY)
