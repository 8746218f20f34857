"""NMT_MALLOC: the entry point restarts itself once with the chosen allocator preloaded."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from nmt.process import ALLOCATORS, chosen_allocator

# What an entry point does first, then what it sees: which allocator is mapped, and
# whether glibc's tuning applies.
PROGRAM = """
import sys
from nmt.process import keep_freed_memory, preload_allocator
preload_allocator([sys.executable, *sys.orig_argv[1:]])
maps = open("/proc/self/maps").read()
print([name for name in ("jemalloc", "tcmalloc") if name in maps], keep_freed_memory())
"""


def run_with(malloc: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NMT_MALLOC", "LD_PRELOAD")}
    if malloc is not None:
        env["NMT_MALLOC"] = malloc
    return subprocess.run(
        [sys.executable, "-c", PROGRAM],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("malloc", "seen"),
    [
        (None, "[] True"),
        ("glibc-tuned", "[] True"),
        ("glibc", "[] False"),
        ("jemalloc", "['jemalloc'] False"),
        ("tcmalloc", "['tcmalloc'] False"),
    ],
)
def test_the_chosen_allocator_is_the_one_in_use(malloc: str | None, seen: str) -> None:
    result = run_with(malloc)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == seen


def test_an_unknown_allocator_is_refused_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NMT_MALLOC", "mimalloc")
    with pytest.raises(ValueError, match="glibc-tuned, glibc, jemalloc, tcmalloc"):
        chosen_allocator()
    assert list(ALLOCATORS) == ["glibc-tuned", "glibc", "jemalloc", "tcmalloc"]


def test_the_nmt_command_names_the_choices_for_an_unknown_allocator() -> None:
    env = {**os.environ, "NMT_MALLOC": "mimalloc"}
    command = [sys.executable, "-m", "nmt.cli", "evaluate", "--checkpoint", "x.pt"]
    result = subprocess.run(
        [*command, "--src", "x", "--ref", "y"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    choices = "use one of glibc-tuned, glibc, jemalloc, tcmalloc"
    assert f"NMT_MALLOC='mimalloc': {choices}" in result.stderr
