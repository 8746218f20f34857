"""Service settings: where each value comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.server import decode_threads
from service.settings import Batching, load_settings


def test_settings_precedence_flags_environment_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("max_chars: 7\nport: 9000\nmax_texts: 3\n", encoding="utf-8")
    monkeypatch.setenv("NMT_MAX_CHARS", "50")
    monkeypatch.setenv("NMT_MODELS", '{"en-de": "/models/en-de.pt"}')
    settings = load_settings(config, port=9100, host=None)
    assert settings.port == 9100  # flag over file
    assert settings.max_chars == 50  # environment over file
    assert settings.max_texts == 3  # file over default
    assert settings.models == {"en-de": Path("/models/en-de.pt")}
    monkeypatch.setenv("NMT_CONFIG", str(config))
    assert load_settings().max_texts == 3
    with pytest.raises(ValueError, match="max_beam_size"):
        load_settings(default_beam_size=20)
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "missing.yaml")


def test_batching_defaults_follow_the_device_and_settings_override_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings()
    assert settings.batching("cpu") == Batching(max_sentences=16, workers=2)
    assert settings.batching("cuda") == Batching(max_sentences=64, workers=1)
    monkeypatch.setenv("NMT_DECODE_WORKERS", "3")
    settings = load_settings(max_batch_sentences=8)
    assert settings.batching("cpu") == settings.batching("cuda") == Batching(8, 3)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    assert decode_threads(settings) == 2  # 8 cores shared by 3 workers
    monkeypatch.delenv("NMT_DECODE_WORKERS")
    assert decode_threads(load_settings()) == 4  # by the CPU's 2 workers, whatever the device
