"""Documents rather than sentences: texts cut into sentences and put back together
(``text``), placeholders kept verbatim (``placeholders``), HTML with its markup carried
over (``html``). Each job lists the sentences to translate (``sources``) and turns
their translations into the translated document (``finish``)."""

from __future__ import annotations

from nmt.documents.html import HtmlJob
from nmt.documents.text import TextJob
from nmt.search import SearchConfig
from nmt.translator import Translator

__all__ = ["HtmlJob", "TextJob", "translate_documents"]


def translate_documents(
    translator: Translator,
    jobs: list[TextJob] | list[HtmlJob],
    cfg: SearchConfig,
    batch_size: int = 64,
) -> list[str]:
    """Translate every job's sentences in shared batches; the finished documents."""
    sources = [s for job in jobs for s in job.sources]
    translations = translator.translate(sources, cfg, batch_size)
    out, start = [], 0
    for job in jobs:
        out.append(job.finish(translations[start : start + len(job.sources)]))
        start += len(job.sources)
    return out
