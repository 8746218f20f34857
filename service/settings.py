"""Service configuration: CLI flags > ``NMT_*`` environment variables > YAML file > defaults."""

from __future__ import annotations

import contextvars
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from nmt.device import DECODING_PRECISION, Precision
from nmt.search import DEFAULT_SEARCH, MAX_ALPHA, MIN_ALPHA

# The YAML file of the settings being loaded; a context variable rather than a class
# attribute so that loading settings never changes the Settings class itself.
_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "nmt_config_file", default=None
)


@dataclass(frozen=True)
class Batching:
    """How a model's texts are batched: sentences a batch, batches decoded at once."""

    max_sentences: int
    workers: int


# Measured: docs/benchmarks.md ("Service: worst requests, bad traffic, throughput against
# offline decoding" on 2 CPU cores; "On a GPU" on an H200, where one worker with batches
# of 64 served 269 sentences/s to 32 clients against 199 with the CPU's defaults).
BATCHING_ON_CPU = Batching(max_sentences=16, workers=2)
BATCHING_ON_GPU = Batching(max_sentences=64, workers=1)


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
    precision: Precision = Field(
        DECODING_PRECISION,
        description="decode under autocast: bf16 is faster where the hardware has it",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    # limits on one request (see README, "Limits"); every refusal names its limit
    max_chars: int = Field(
        10_000, ge=1, description="characters per text, as sent (texts are cut into sentences)"
    )
    max_texts: int = Field(
        256, ge=1, description="texts per request (a web page's segments fit in one)"
    )
    max_sentence_chars: int = Field(
        300,
        ge=20,
        description="a sentence longer than this is cut at a space: a model trained on "
        "sentences translates no longer ones well",
    )
    max_text_tokens: int = Field(
        200, ge=1, description="source subwords per sentence, counted after normalization"
    )
    max_request_tokens: int = Field(
        3000, ge=1, description="source subwords per request, all texts together"
    )
    max_request_work: int = Field(
        40_000,
        ge=1,
        description="decoding work per request: the most steps search may take for each "
        "sentence (max_len_a x subwords + max_len_b) times the beam size, summed; bounds "
        "how long one request decodes (about 5 s on 2 CPU cores)",
    )
    max_output_tokens: int = Field(
        256, ge=1, description="target subwords per translation (beam search stops there)"
    )
    max_beam_size: int = Field(10, ge=1)
    max_n_best: int = Field(10, ge=1)
    default_beam_size: int = Field(DEFAULT_SEARCH.beam_size, ge=1)
    default_alpha: float = Field(DEFAULT_SEARCH.alpha, ge=MIN_ALPHA, le=MAX_ALPHA)
    max_body_bytes: int = Field(1_048_576, ge=1024, description="request body size; more is 413")
    max_json_depth: int = Field(16, ge=2, description="nesting of a JSON body; deeper is 400")
    request_timeout_s: float = Field(
        60.0, gt=0, description="deadline of a request in the queue and decoding; then 503"
    )

    # dynamic batching
    max_batch_sentences: int | None = Field(
        None,
        ge=1,
        description="sentences per batched decode; default: 16 on a CPU (with two one-core "
        "workers, larger batches decode little faster per sentence but leave the other "
        "worker idle), 64 on a GPU (a batch costs little more than one sentence)",
    )
    max_batch_work: int = Field(
        4000,
        ge=1,
        description="source subwords x beam size per batched decode: bounds how long one "
        "batch (and so a request queued behind it) takes",
    )
    max_wait_ms: float = Field(5.0, ge=0.0, description="how long a batch waits for company")
    decode_workers: int | None = Field(
        None,
        ge=1,
        description="batches decoded at once per model, each by its own thread; default: "
        "2 on a CPU, 1 on a GPU (one GPU decodes one batch at a time)",
    )
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="PyTorch threads per decode; default: the process's cores shared "
        "among the decode workers",
    )
    queue_size: int = Field(1024, ge=1, description="texts waiting per model; more gets 429")

    # rate limits per client (off when None): a client is its API key, else its address
    rate_limit_requests: int | None = Field(
        None, ge=1, description="requests per minute per client; more gets 429"
    )
    rate_limit_chars: int | None = Field(
        None, ge=1, description="characters to translate per minute per client; more gets 429"
    )
    client_address_header: str | None = Field(
        None,
        description="behind a proxy: the header holding the client address (e.g. "
        "X-Forwarded-For, its first entry is used); only set it when the proxy sets it",
    )

    # access
    api_keys: list[SecretStr] = Field(
        default_factory=list, description="if set, every translation request needs one of them"
    )
    api_keys_file: Path | None = Field(
        None, description="a file of API keys, one a line (a Docker or Kubernetes secret)"
    )
    cors_origins: list[str] = Field(default_factory=list)
    detect_languages: bool = Field(
        True,
        description="language detection for source=auto and /detect (lingua, its models "
        "in memory); off, source=auto takes the target's first source language and "
        "/detect answers with confidence 0",
    )

    # operations
    ready_when: Literal["all", "any"] = Field(
        "all", description="ready once all models loaded, or (degraded) once any has"
    )
    shutdown_delay_s: float = Field(
        2.0,
        ge=0,
        description="on SIGTERM, /ready answers 503 this long before the "
        "listener closes, so that load balancers stop sending first",
    )
    graceful_shutdown_s: float = Field(
        20.0, gt=0, description="then in-flight requests have this long to finish"
    )
    stall_seconds: float = Field(
        120.0, gt=0, description="/health fails when a model's worker is stuck this long"
    )

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.default_beam_size > self.max_beam_size:
            raise ValueError(
                f"default_beam_size ({self.default_beam_size}) exceeds max_beam_size "
                f"({self.max_beam_size})"
            )
        if self.api_keys_file is not None:
            self.api_keys = [*self.api_keys, *read_keys_file(self.api_keys_file)]
        return self

    def key_is_valid(self, key: str) -> bool:
        """Whether ``key`` is one of the API keys, in time independent of where they differ."""
        given = key.encode()
        matches = [hmac.compare_digest(given, k.get_secret_value().encode()) for k in self.api_keys]
        return any(matches)

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

    def batching(self, device_type: str) -> Batching:
        """``max_batch_sentences`` and ``decode_workers`` as set, else the defaults for
        a model decoding on ``device_type`` (``cpu`` or ``cuda``)."""
        default = BATCHING_ON_GPU if device_type == "cuda" else BATCHING_ON_CPU
        return Batching(
            self.max_batch_sentences or default.max_sentences,
            self.decode_workers or default.workers,
        )

    def model_paths(self) -> dict[str, Path]:
        """All models to serve: ``models`` plus the checkpoints found in ``model_dir``."""
        paths = dict(self.models)
        if self.model_dir is not None:
            for path in sorted(self.model_dir.glob("*.pt")):
                paths.setdefault(path.stem, path)
        return paths


def read_keys_file(path: Path) -> list[SecretStr]:
    """API keys from a file, one a line; blank lines and ``#`` comments ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ValueError(f"api_keys_file {path} cannot be read: {err.strerror}") from err
    keys = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise ValueError(f"api_keys_file {path} holds no key")
    return [SecretStr(k) for k in keys]


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
