"""Shared fixtures: a tiny synthetic parallel corpus and a matching training config."""

from __future__ import annotations

import contextlib
import gzip
import os
import random
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

WORDS = ["the", "dog", "cat", "runs", "sees", "a", "big", "small", "red", "man", "woman", "ball"]
GLOSS = {w: w[::-1] + "x" for w in WORDS}  # a "language" whose words are reversed + x


def make_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Source sentences and their deterministic 'translations' (word map + reversal)."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 6))]
        pairs.append((" ".join(words), " ".join(GLOSS[w] for w in reversed(words))))
    return pairs


def write_split(
    directory: Path, split: str, pairs: list[tuple[str, str]], gz: bool = False
) -> None:
    for lang, side in (("xx", 0), ("yy", 1)):
        text = "\n".join(p[side] for p in pairs) + "\n"
        if gz:
            with gzip.open(directory / f"{split}.{lang}.gz", "wt", encoding="utf-8") as f:
                f.write(text)
        else:
            (directory / f"{split}.{lang}").write_text(text, encoding="utf-8")


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


def tiny_config_dict(corpus_dir: Path, output_dir: Path) -> dict[str, Any]:
    """A raw config dict for a model that trains in a second or two."""
    return {
        "output_dir": str(output_dir),
        "device": "cpu",
        "data": {"dir": str(corpus_dir), "src_lang": "xx", "tgt_lang": "yy", "download": False},
        "tokenizer": {"joint": True, "vocab_size": 60},
        "model": {"emb_size": 16, "encoder_hidden": 16, "decoder_hidden": 24, "dropout": 0.2},
        "train": {
            "batch_tokens": 120,
            "valid_every": 4,
            "log_every": 2,
            "keep_last": 1,
            "precision": "fp32",
            "seed": 7,
            "early_stopping_patience": None,
        },
    }


@pytest.fixture
def tiny_config(corpus_dir: Path, tmp_path: Path) -> dict[str, Any]:
    return tiny_config_dict(corpus_dir, tmp_path / "run")


@pytest.fixture(scope="session")
def toy_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a model that has learnt the toy language (validation BLEU > 30).

    Trained once per test session (a few seconds) and shared, read-only, by the tests
    that need real translations: evaluation, the service, the container command.
    """
    from training.config import validate_config
    from training.trainer import Trainer

    root = tmp_path_factory.mktemp("toy")
    corpus = root / "data"
    corpus.mkdir()
    write_split(corpus, "train", make_pairs(80, seed=1), gz=True)
    write_split(corpus, "val", make_pairs(12, seed=2))
    raw = tiny_config_dict(corpus, root / "run")
    raw["train"].update(valid_every=100, learning_rate=0.01, keep_last=0)
    # PyTorch's default init learns this tiny model faster than U(-0.1, 0.1)
    raw["model"].update(dropout=0.0, init_range=0.0)
    torch.manual_seed(0)
    Trainer(validate_config(raw)).run(max_steps=300)
    return root / "run" / "best.pt"


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
