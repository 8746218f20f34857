"""Texts and HTML as documents: each cut into sentences with its placeholders taken
out, the sentences of a whole request decoded together (in the model's batches, within
the request's subword limits), and the translations put back together."""

from __future__ import annotations

import functools
import string
from typing import Literal

from fastapi import Request

from nmt.documents.html import HtmlJob
from nmt.documents.text import TextJob
from nmt.search import SearchConfig
from nmt.translator import Translation
from service.dependencies import encode_within_limits, translate_texts
from service.registry import ServedModel
from service.settings import Settings

# ASCII punctuation, and the quotation marks and dashes of European languages
PUNCTUATION = string.punctuation + "«»„“”¿¡…—\u2018\u2019\u201a\u2039\u203a\u2013"
Job = TextJob | HtmlJob
Format = Literal["text", "html"]
# file types /translate_file takes, by extension
FORMATS: dict[str, Format] = {".txt": "text", ".html": "html", ".htm": "html"}


def plan(texts: list[str], fmt: Format, served: ServedModel, settings: Settings) -> list[Job]:
    """A job per text, in ``served``'s source language."""
    tokenizer = served.translator.src_tok

    @functools.lru_cache(maxsize=4096)
    def unknown(word: str) -> bool:
        """A word whose letters the model cannot spell (punctuation around it aside)."""
        core = word.strip(PUNCTUATION)
        return bool(core) and not tokenizer.spells(core)

    language = served.source
    if fmt == "html":
        return [HtmlJob.plan(t, language, unknown) for t in texts]
    return [TextJob.plan(t, language, unknown, settings.max_sentence_chars) for t in texts]


async def translate_jobs(
    request: Request,
    served: ServedModel,
    jobs: list[Job],
    options: SearchConfig,
    field: str,
) -> list[list[Translation]]:
    """Every job's sentences decoded in one submission; their translations, by job."""
    settings: Settings = request.app.state.settings
    sources = [s for job in jobs for s in job.sources]
    if not sources:
        return [[] for _ in jobs]
    encoded = encode_within_limits(served, sources, settings, field)
    done = await translate_texts(request, served, encoded, options)
    out, start = [], 0
    for job in jobs:
        count = len(job.sources)
        out.append([t for t, _ in done[start : start + count]])
        start += count
    return out
