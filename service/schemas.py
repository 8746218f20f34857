"""Request and response bodies of the HTTP API (separate from the neural model code)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from nmt.search import MAX_ALPHA, MIN_ALPHA

# Static limits only: the character and count limits are server settings, checked per request.
Text = Annotated[str, StringConstraints(min_length=1, pattern=r"\S")]


class ErrorResponse(BaseModel):
    """The one shape of every error answer (LibreTranslate clients read ``error``)."""

    error: str = Field(description="what is wrong, naming the field where there is one")
    field: str | None = Field(None, description="the request field at fault, if any")


# ------------------------------------------------------------------ /v1/translate
class TranslateRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"text": "A man rides a bike.", "source": "en", "target": "de"}]
        },
    )

    text: Text | Annotated[list[Text], Field(min_length=1)] = Field(
        description="one text or a list of texts (limits: see the server's settings)"
    )
    source: str | None = Field(None, description="source language code (with target)")
    target: str | None = Field(None, description="target language code (with source)")
    model: str | None = Field(None, description="a model name, instead of source and target")
    beam_size: int | None = Field(None, ge=1, description="1 = greedy; default from the server")
    alpha: float | None = Field(
        None,
        ge=MIN_ALPHA,
        le=MAX_ALPHA,
        description="length normalization: score / length**alpha; default from the server",
    )
    n_best: int = Field(1, ge=1, description="hypotheses to return per text")
    alignments: bool = Field(True, description="return attention matrices and word alignments")


class Alternative(BaseModel):
    translation: str
    score: float


class TranslationResult(BaseModel):
    translation: str
    score: float = Field(description="length-normalized log-probability")
    confidence: float = Field(ge=0.0, le=1.0)
    n_best: list[Alternative]
    source_tokens: list[str]
    target_tokens: list[str]
    attention: list[list[float]] | None = Field(
        None, description="(target tokens + EOS) x source tokens; rows sum to 1"
    )
    source_words: list[str]
    target_words: list[str]
    word_attention: list[list[float]] | None = Field(
        None, description="target words x source words"
    )
    alignment: list[tuple[int, int]] | None = Field(
        None, description="(source word index, target word index) pairs"
    )


class Timing(BaseModel):
    total_ms: float
    queue_ms: float = Field(description="longest wait of this request's texts in the queue")
    decode_ms: float = Field(description="longest decode of the batches they were in")
    batch_sizes: list[int] = Field(description="size of the batch each sentence was decoded in")


class TranslateResponse(BaseModel):
    model: str
    source: str
    target: str
    translations: list[TranslationResult]
    timing: Timing


# ------------------------------------------------------------------ LibreTranslate
class DetectedLanguage(BaseModel):
    """LibreTranslate's detection answer: a language code and a confidence, 0-100."""

    confidence: float = Field(ge=0.0, le=100.0)
    language: str


class FrontendSettings(BaseModel):
    """What LibreTranslate's web page and some clients read from ``/frontend/settings``."""

    charLimit: int
    frontendTimeout: int
    apiKeys: bool
    keyRequired: bool
    suggestions: bool = False
    filesTranslation: bool = True
    supportedFilesFormat: list[str]
    language: dict[str, dict[str, str]]


class TranslatedFile(BaseModel):
    translatedFileUrl: str


class Language(BaseModel):
    code: str
    name: str
    targets: list[str]


# ------------------------------------------------------------------ operations
class ModelInfo(BaseModel):
    name: str
    source: str
    target: str
    parameters: int
    device: str
    step: int
    checkpoint: str = Field(description="checkpoint file name")
    scores: dict[str, float | str] = Field(description="validation scores stored at training")


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class ReadyResponse(BaseModel):
    ready: bool
    loading: bool
    draining: bool = Field(description="shutting down: finishing what it has, taking no more")
    models: dict[str, Literal["loading", "loaded", "failed"]] = Field(
        description="every configured model by name (why one failed is in the server log)"
    )


class HealthResponse(BaseModel):
    status: Literal["ok", "stalled"] = "ok"
    stalled: list[str] = Field(
        default_factory=list, description="models whose decoding worker is stuck"
    )
