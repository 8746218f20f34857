"""``POST /v1/translate``: translations with scores, n-best lists and alignments."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request

from nmt.documents.sentences import split_sentences
from nmt.documents.text import merged
from nmt.translator import Translation
from service.dependencies import (
    RegistryDep,
    SettingsDep,
    api_key_header,
    checked_texts,
    choose_model,
    count_characters,
    encode_within_limits,
    search_options,
    translate_texts,
)
from service.guard import key_outside_body
from service.schemas import (
    Alternative,
    ErrorResponse,
    Timing,
    TranslateRequest,
    TranslateResponse,
    TranslationResult,
)

router = APIRouter(prefix="/v1", tags=["translation"])

ERRORS: dict[int | str, dict] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 413, 422, 429, 503)
}


def _result(t: Translation, alignments: bool) -> TranslationResult:
    return TranslationResult(
        translation=t.text,
        score=t.score,
        confidence=t.confidence,
        n_best=[Alternative(translation=text, score=score) for text, score in t.n_best],
        source_tokens=t.source_tokens,
        target_tokens=t.target_tokens,
        attention=t.attention if alignments else None,
        source_words=t.source_words,
        target_words=t.target_words,
        word_attention=t.word_attention if alignments else None,
        alignment=t.alignment if alignments else None,
    )


@router.post(
    "/translate",
    response_model=TranslateResponse,
    responses=ERRORS,
    dependencies=[Depends(api_key_header)],
)
async def translate(
    request: Request, body: TranslateRequest, settings: SettingsDep, registry: RegistryDep
) -> TranslateResponse:
    """Translate one text or a list; each result carries its attention and word alignments.

    A text of several sentences is translated sentence by sentence (the model was
    trained on sentences) and put back together with its white space; its alignments
    then index the words of the whole text, and n-best lists hold the whole text only.
    """
    start = time.perf_counter()
    texts = checked_texts(body.text, settings, "text")
    served = choose_model(registry, body.model, body.source, body.target)
    options = search_options(settings, body.beam_size, body.alpha, body.n_best, body.alignments)
    segmented = [split_sentences(t, served.source, settings.max_sentence_chars) for t in texts]
    sentences = [s for text in segmented for s in text.sentences]
    sources = encode_within_limits(served, sentences, settings, "text")
    count_characters(request, texts, key_outside_body(request))
    done = await translate_texts(request, served, sources, options)
    translations, position = [], 0
    for text in segmented:
        mine = [t for t, _ in done[position : position + len(text.sentences)]]
        translations.append(merged(mine, text))
        position += len(text.sentences)
    return TranslateResponse(
        model=served.name,
        source=served.source,
        target=served.target,
        translations=[_result(t, body.alignments) for t in translations],
        timing=Timing(
            total_ms=(time.perf_counter() - start) * 1000,
            queue_ms=max(info.wait_ms for _, info in done),
            decode_ms=max(info.decode_ms for _, info in done),
            batch_sizes=[info.size for _, info in done],
        ),
    )
