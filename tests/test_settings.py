"""Service settings: where each value comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import load_settings


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
