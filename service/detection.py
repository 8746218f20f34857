"""Language detection (``source=auto``, ``POST /detect``) among the languages a server
holds, with ``lingua``: restricting it to those languages makes it both faster and
more accurate than asking which of 75 languages a text is in.

lingua is imported only when a detector is built: a server with detection turned off
(``detect_languages``) or with one language never loads it or its models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lingua import Language, LanguageDetector


@dataclass(frozen=True)
class Detected:
    """A language code and the detector's confidence in it, 0 to 100."""

    language: str
    confidence: float


def _lingua_languages(codes: list[str]) -> dict[str, Language]:
    """The codes lingua knows, with its language for each."""
    from lingua import IsoCode639_1, Language

    isos = {c: getattr(IsoCode639_1, c.upper(), None) for c in codes}
    return {c: Language.from_iso_code_639_1(iso) for c, iso in isos.items() if iso is not None}


class LanguageDetection:
    """Detects which of ``codes`` (ISO 639-1) a text is in. A code lingua does not know
    is only answered when it is the one candidate (with confidence 0 when several
    candidates cannot be told apart); with ``enabled`` False, every code is such a code
    and no detector is built."""

    def __init__(self, codes: list[str], enabled: bool = True) -> None:
        # lingua needs two candidates at least
        known = _lingua_languages(codes) if enabled and len(codes) >= 2 else {}
        self.held = sorted(codes)
        self.codes = sorted(known)
        self._code = {lang: code for code, lang in known.items()}
        self._detector: LanguageDetector | None = None
        if len(known) >= 2:
            from lingua import LanguageDetectorBuilder

            self._detector = (
                LanguageDetectorBuilder.from_languages(*known.values())
                .with_preloaded_language_models()
                .build()
            )

    def candidates(self, text: str, among: list[str] | None = None) -> list[Detected]:
        """The languages ``text`` may be in, most likely first (restricted to ``among``
        where given); empty when there is nothing to go by."""
        candidates = self.held if among is None else sorted(among)
        if not candidates or not text.strip():
            return []
        if len(candidates) == 1:
            return [Detected(candidates[0], 100.0)]
        allowed = [c for c in candidates if c in self._code.values()]
        if self._detector is None or len(allowed) < 2:
            return [Detected(c, 0.0) for c in sorted(candidates, key=lambda c: c not in allowed)]
        values = self._detector.compute_language_confidence_values(text)
        scores = {self._code[v.language]: v.value for v in values}
        total = sum(scores[c] for c in allowed) or 1.0
        ranked = sorted(allowed, key=lambda c: -scores[c])
        return [Detected(c, round(100 * scores[c] / total, 1)) for c in ranked]

    def detect(self, text: str, among: list[str] | None = None) -> Detected | None:
        """The most likely language of ``text`` (within ``among``), or None."""
        found = self.candidates(text, among)
        return found[0] if found else None
