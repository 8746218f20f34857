"""Language detection among the languages a server holds (``source=auto``, ``/detect``)."""

from __future__ import annotations

import pytest

from service.detection import LanguageDetection


def test_detection_tells_the_held_languages_apart() -> None:
    detection = LanguageDetection(["de", "en", "fr"])
    assert detection.codes == ["de", "en", "fr"]
    found = detection.detect("Ein Mann fährt mit seinem Fahrrad über die Brücke.")
    assert found is not None and found.language == "de" and found.confidence > 50
    among = detection.detect("A man rides his bicycle over the bridge.", among=["en", "fr"])
    assert among is not None and among.language == "en"
    ranked = detection.candidates("Un homme traverse le pont à vélo.")
    assert ranked[0].language == "fr"
    assert sum(c.confidence for c in ranked) == pytest.approx(100, abs=0.5)


def test_turned_off_it_builds_no_detector_and_answers_by_elimination() -> None:
    off = LanguageDetection(["de", "en"], enabled=False)
    assert off.codes == []
    text = "Ein Mann fährt mit seinem Fahrrad über die Brücke."
    assert [(c.language, c.confidence) for c in off.candidates(text)] == [
        ("de", 0.0),
        ("en", 0.0),
    ]
    only = off.detect(text, among=["en"])
    assert only is not None and (only.language, only.confidence) == ("en", 100.0)
