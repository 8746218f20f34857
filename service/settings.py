"""Service configuration: CLI flags > ``NMT_*`` environment variables > YAML file > defaults."""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

# The YAML file of the settings being loaded; a context variable rather than a class
# attribute so that loading settings never changes the Settings class itself.
_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "nmt_config_file", default=None
)


class Settings(BaseSettings):
    """Everything ``nmt serve`` can be told. Each field is also ``NMT_<FIELD>`` in the
    environment (lists and mappings as JSON) and a key of the ``--config`` YAML file."""

    model_config = SettingsConfigDict(env_prefix="NMT_", extra="forbid")

    models: dict[str, Path] = Field(
        default_factory=dict,
        description="model name -> checkpoint path; the language pair is read from the checkpoint",
    )
    model_dir: Path | None = Field(
        None, description="also serve every *.pt file in this directory, named by its file stem"
    )
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    quantize: Literal["int8"] | None = Field(
        None, description="int8: dynamic int8 quantization of the models (CPU only)"
    )
    precision: Literal["fp32", "bf16", "fp16", "auto"] = Field(
        "fp32", description="decode under autocast: bf16 is faster where the hardware has it"
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    # limits on one request
    max_chars: int = Field(1000, ge=1, description="characters per text")
    max_texts: int = Field(64, ge=1, description="texts per request")
    max_beam_size: int = Field(10, ge=1)
    max_n_best: int = Field(10, ge=1)
    default_beam_size: int = Field(5, ge=1)
    default_alpha: float = Field(1.0, ge=0.0, le=2.0)

    # dynamic batching
    max_batch_sentences: int = Field(64, ge=1, description="sentences per batched decode")
    max_batch_tokens: int = Field(4000, ge=1, description="source subwords per batched decode")
    max_wait_ms: float = Field(5.0, ge=0.0, description="how long a batch waits for company")
    queue_size: int = Field(1024, ge=1, description="texts waiting per model; more gets 429")

    api_keys: list[str] = Field(
        default_factory=list, description="if set, every translation request needs one of them"
    )
    cors_origins: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.default_beam_size > self.max_beam_size:
            raise ValueError(
                f"default_beam_size ({self.default_beam_size}) exceeds max_beam_size "
                f"({self.max_beam_size})"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        path = _config_file.get()
        if path is not None:
            sources += (YamlConfigSettingsSource(settings_cls, yaml_file=path),)
        return sources

    def model_paths(self) -> dict[str, Path]:
        """All models to serve: ``models`` plus the checkpoints found in ``model_dir``."""
        paths = dict(self.models)
        if self.model_dir is not None:
            for path in sorted(self.model_dir.glob("*.pt")):
                paths.setdefault(path.stem, path)
        return paths


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``overrides`` (CLI flags; None values ignored), then the environment,
    then ``config_file`` (or the file named by ``NMT_CONFIG``), then the defaults.

    Raises:
        FileNotFoundError: the YAML file does not exist.
        pydantic.ValidationError: a value is wrong; the message names the field.
    """
    if config_file is None and os.environ.get("NMT_CONFIG"):
        config_file = Path(os.environ["NMT_CONFIG"])
    if config_file is not None and not config_file.is_file():
        raise FileNotFoundError(f"service config {config_file} does not exist")
    token = _config_file.set(config_file)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    finally:
        _config_file.reset(token)
