"""Shared fixtures: a tiny synthetic parallel corpus and a matching training config."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from toy import make_pairs, tiny_config_dict, train_toy_model, write_split


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    directory.mkdir()
    write_split(directory, "train", make_pairs(80, seed=1), gz=True)
    write_split(directory, "val", make_pairs(12, seed=2))
    return directory


@pytest.fixture
def tiny_config(corpus_dir: Path, tmp_path: Path) -> dict[str, Any]:
    return tiny_config_dict(corpus_dir, tmp_path / "run")


@pytest.fixture(scope="session")
def toy_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a model that has learnt the toy language (validation BLEU > 30).

    Trained once per test session (a few seconds) and shared, read-only, by the tests
    that need real translations: evaluation, the service, the container command.
    """
    return train_toy_model(tmp_path_factory.mktemp("toy"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A server started by ``server_process``: its process, base URL and output so far."""

    def __init__(self, proc: subprocess.Popen, base: str, log: Any) -> None:
        self.proc, self.base, self._log = proc, base, log

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")


@contextlib.contextmanager
def server_process(
    command: list[str], env: dict[str, str], port: int, timeout: float = 90.0
) -> Iterator[ServerProcess]:
    """Run ``command`` (a server on ``port``) until /ready answers 200; stop it after."""
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = ServerProcess(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{server.output()}")
            try:
                if httpx.get(f"{server.base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command} not ready after {timeout} s")
            time.sleep(0.2)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def running_server(
    command: list[str], env: dict[str, str], port: int, timeout: float = 90.0
) -> Iterator[str]:
    """Run ``command`` (a server on ``port``) until /ready answers 200; yield its base URL."""
    with server_process(command, env, port, timeout) as server:
        yield server.base


def serve_command(checkpoint: Path, port: int, log_level: str = "warning") -> list[str]:
    """``nmt serve`` of ``checkpoint`` as the model 'toy' on CPU."""
    command = [sys.executable, "-m", "nmt.cli", "serve", "--model", f"toy={checkpoint}"]
    return [*command, "--port", str(port), "--device", "cpu", "--log-level", log_level]


@pytest.fixture(scope="session")
def live_server(toy_model: Path) -> Iterator[str]:
    """``nmt serve`` in its own process, serving the toy model as 'toy' (xx -> yy)."""
    port = free_port()
    env = {
        **os.environ,
        "NMT_MAX_CHARS": "200",
        "NMT_MAX_BEAM_SIZE": "4",
        "NMT_DEFAULT_BEAM_SIZE": "2",
        "NMT_MAX_N_BEST": "4",
        "NMT_MAX_WAIT_MS": "20",
    }
    with running_server(serve_command(toy_model, port), env, port) as base:
        yield base
