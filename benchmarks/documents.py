"""Documents benchmark: paragraphs, HTML and language detection on Multi30k test data.

    python benchmarks/documents.py --checkpoint /work/runs/en_de/best.pt --out runs/bench_documents

- Paragraphs: the test_2016_flickr (``--split``) sentences joined into paragraphs of 3-5 sentences
  (fixed seed), translated as paragraphs (cut into sentences by the service's code),
  against the same sentences translated one by one and joined the same way; BLEU of
  both against the joined references.
- HTML: every sentence as ``<p>`` with its second word in ``<b>`` and its last word in
  a link; the share of outputs whose tags (with attributes) equal the input's, and
  BLEU after stripping the tags, against plain-text translation.
- Detection: the test sentences in en, de, fr and cs, detected among those four.

Beam 5, CPU. Writes OUT/documents.json and prints the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from pathlib import Path

import sacrebleu
from lxml import html as lxml_html

from nmt.documents import HtmlJob, TextJob, translate_documents
from nmt.search import SearchConfig
from nmt.text_files import read_lines
from nmt.translator import Translator
from service.detection import LanguageDetection

ROOT = Path(__file__).resolve().parent.parent


def paragraphs(n: int, seed: int = 0) -> list[tuple[int, int]]:
    """(start, stop) of consecutive groups of 3-5 sentences covering ``n`` sentences."""
    rng, spans, start = random.Random(seed), [], 0
    while start < n:
        stop = min(n, start + rng.randint(3, 5))
        spans.append((start, stop))
        start = stop
    return spans


def tag_multiset(markup: str) -> Counter:
    root = lxml_html.fragment_fromstring(markup, create_parent="div")
    return Counter((e.tag, tuple(sorted(e.attrib.items()))) for e in root.iter() if e is not root)


def as_html(sentence: str, i: int) -> str:
    words = sentence.split()
    if len(words) >= 3:
        words[1] = f"<b>{words[1]}</b>"
        words[-1] = f'<a href="https://example.org/{i}">{words[-1]}</a>'
    return "<p>" + " ".join(words).replace("&", "&amp;") + "</p>"


def paragraph_bleu(
    translator: Translator, src: list[str], sentences: list[str], ref: list[str], cfg: SearchConfig
) -> dict:
    """BLEU of paragraphs translated as such, against the same sentences translated one
    by one and joined the same way; and how many paragraphs split into other sentences."""
    spans = paragraphs(len(src))
    joined_refs = [" ".join(ref[a:b]) for a, b in spans]
    by_sentence = [" ".join(sentences[a:b]) for a, b in spans]
    jobs = [TextJob.plan(" ".join(src[a:b]), "en") for a, b in spans]
    as_paragraphs = translate_documents(translator, jobs, cfg)
    return {
        "count": len(spans),
        "split_otherwise": sum(
            len(j.sources) != b - a for j, (a, b) in zip(jobs, spans, strict=True)
        ),
        "bleu_sentence_by_sentence": bleu(by_sentence, joined_refs),
        "bleu_as_paragraphs": bleu(as_paragraphs, joined_refs),
    }


def bleu(hyps: list[str], refs: list[str]) -> float:
    return round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/multi30k")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench_documents")
    parser.add_argument(
        "--split",
        default="test_2016_flickr",
        help="the Multi30k split to use (choose settings on val, report on the test set)",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    src = read_lines(args.data / f"{args.split}.en.gz")
    ref = read_lines(args.data / f"{args.split}.de.gz")
    translator = Translator.from_checkpoint(args.checkpoint, "cpu")
    cfg = SearchConfig(beam_size=5)
    result: dict = {}

    started = time.perf_counter()
    plain = SearchConfig(beam_size=5, return_attention=False)
    sentences = [t.text for t in translator.translate(src, plain)]
    result["paragraphs"] = paragraph_bleu(translator, src, sentences, ref, cfg)
    # 52 test sentences end without a full stop: joined, no splitter can find their end.
    # The same with a full stop added to those (in both arms):
    ended = [s if s.rstrip()[-1:] in ".!?" else s.rstrip() + "." for s in src]
    ended_sentences = [t.text for t in translator.translate(ended, plain)]
    result["paragraphs_with_full_stops"] = paragraph_bleu(
        translator, ended, ended_sentences, ref, cfg
    )

    pages = [as_html(s, i) for i, s in enumerate(src)]
    html_jobs = [HtmlJob.plan(p, "en") for p in pages]
    translated = translate_documents(translator, html_jobs, cfg)
    kept = sum(tag_multiset(a) == tag_multiset(b) for a, b in zip(pages, translated, strict=True))
    stripped = [
        lxml_html.fragment_fromstring(t, create_parent="div").text_content() for t in translated
    ]
    result["html"] = {
        "documents": len(pages),
        "tags_kept_share": round(kept / len(pages), 4),
        "bleu_plain_text": bleu(sentences, ref),
        "bleu_html_stripped": bleu([" ".join(s.split()) for s in stripped], ref),
    }

    codes = ["en", "de", "fr", "cs"]
    detection = LanguageDetection(codes)
    correct = total = 0
    per_language = {}
    for code in codes:
        lines = read_lines(args.data / f"{args.split}.{code}.gz")
        hits = sum(detection.detect(line).language == code for line in lines)
        per_language[code] = round(hits / len(lines), 4)
        correct, total = correct + hits, total + len(lines)
    result["detection"] = {"accuracy": round(correct / total, 4), "per_language": per_language}
    result["seconds"] = round(time.perf_counter() - started, 1)
    (args.out / "documents.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
