"""Documents: sentences and whitespace, placeholders, unknown words and HTML markup,
with a stand-in translator whose alignment is known (it reverses and upper-cases the
words), so that where every piece must go can be computed by hand."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from lxml import html as lxml_html

from nmt.documents.html import HtmlJob
from nmt.documents.placeholders import mask
from nmt.documents.sentences import split_sentences
from nmt.documents.text import TextJob
from nmt.translator import Translation


def reverse(source: str) -> Translation:
    """Target word i is source word n-1-i upper-cased; attention on the aligned word."""
    words = source.split()
    n = len(words)
    target = [w.upper() for w in reversed(words)]
    attention = [[1.0 if s == n - 1 - t else 0.0 for s in range(n)] for t in range(n)]
    return Translation(
        text=" ".join(target),
        score=0.0,
        confidence=1.0,
        source_tokens=["\u2581" + w for w in words],
        target_tokens=["\u2581" + w for w in target],
        attention=[*attention, [0.0] * n],
        source_words=words,
        target_words=target,
        word_attention=attention,
        alignment=[(n - 1 - t, t) for t in range(n)],
        n_best=[(" ".join(target), 0.0)],
    )


def run(job: TextJob | HtmlJob) -> str:
    return job.finish([reverse(s) for s in job.sources])


# ------------------------------------------------------------------ sentences
def test_sentences_and_the_whitespace_between_them_are_kept() -> None:
    text = "  A man rides a bike. Two dogs play.\n\nA child eats.\n   Done  "
    segmented = split_sentences(text, "en")
    assert segmented.sentences == [
        "A man rides a bike.", "Two dogs play.", "A child eats.", "Done"
    ]  # fmt: skip
    assert segmented.join(segmented.sentences) == text
    translated = run(TextJob.plan(text, "en"))
    assert translated == "  BIKE. A RIDES MAN A PLAY. DOGS TWO\n\nEATS. CHILD A\n   DONE  "


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab .!?\n\t"), max_size=80))
def test_any_text_splits_into_sentences_that_join_back_exactly(text: str) -> None:
    segmented = split_sentences(text, "en", max_chars=10)
    assert segmented.join(segmented.sentences) == text
    assert all(s == s.strip() and s for s in segmented.sentences)


def test_a_long_sentence_is_cut_at_spaces() -> None:
    text = " ".join(["word"] * 1200)  # 5,999 characters, no full stop
    segmented = split_sentences(text, "en", max_chars=400)
    assert len(segmented.sentences) > 10
    assert all(len(s) <= 400 for s in segmented.sentences)
    assert segmented.join(segmented.sentences) == text


# --------------------------------------------------------------- placeholders
@pytest.mark.parametrize(
    "placeholder",
    [
        "https://example.org/a?b=c&d=e", "www.example.org", "jo@example.org", "@alice",
        "@bob@mastodon.social", "#caturday", "42", "3.14", "12:30", "{{name}}", "{0}",
        "%1$s", "%s", "[X7X]",
    ],
)  # fmt: skip
def test_each_placeholder_comes_back_verbatim(placeholder: str) -> None:
    masked = mask(f"see {placeholder} now")
    assert placeholder not in masked.text
    assert [p.text for p in masked.placeholders] == [placeholder]
    # "see now" -> "NOW SEE": the placeholder follows the word aligned to "see"
    assert run(TextJob.plan(f"see {placeholder} now", "en")) == f"NOW SEE {placeholder}"


def test_placeholders_at_the_start_and_words_the_model_cannot_spell() -> None:
    job = TextJob.plan("{0} Ωμέγα a b", "en", unknown=lambda w: w == "Ωμέγα")
    assert job.sources == ["a b"]
    assert run(job) == "{0} Ωμέγα B A"
    assert run(TextJob.plan("https://x.org", "en")) == "https://x.org"


def test_unknown_target_pieces_copy_the_source_word_they_attend_to() -> None:
    t = reverse("a cat")
    t.target_tokens[1] = "\u2581<unk>"  # the model could not spell "CAT"... it gave <unk>
    t.target_tokens[1] = "<unk>"
    t.target_tokens.insert(1, "\u2581")
    t.attention.insert(1, [0.0, 0.0])
    from nmt.documents.text import copy_unknown

    assert copy_unknown(t) == ["CAT", "a"]


# ----------------------------------------------------------------------- HTML
def tags(markup: str) -> Counter:
    """Every element's tag and attributes (none where there is nothing to parse)."""
    try:
        root = lxml_html.fragment_fromstring(markup, create_parent="div")
    except etree.ParserError:
        return Counter()
    return Counter(
        (e.tag, tuple(sorted(e.attrib.items()))) for e in root.iter() if isinstance(e.tag, str)
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("<p>the <b>big</b> dog</p>", "<p>DOG <b>BIG</b> THE</p>"),
        (
            '<p>a <a href="/x?y=1&amp;z=2" class="l">red <i>small</i> ball</a> here</p>',
            '<p>HERE <a href="/x?y=1&amp;z=2" class="l">BALL <i>SMALL</i> RED</a> A</p>',
        ),
        ("<p>one<br>two</p>", "<p>TWO ONE <br></p>"),
        (
            '<p>say <span translate="no">Foo Bar</span> now</p>',
            '<p>NOW SAY <span translate="no">Foo Bar</span></p>',
        ),
        ("<p>run <code>ls -l</code> fast</p>", "<p>FAST RUN <code>ls -l</code></p>"),
        ("<ul><li>a b</li><li>c &amp; d</li></ul>", "<ul><li>B A</li><li>D &amp; C</li></ul>"),
        ("<p>x <!-- note --> y</p>", "<p>Y X <!-- note --></p>"),
    ],
)  # fmt: skip
def test_inline_markup_follows_the_aligned_words(source: str, expected: str) -> None:
    out = run(HtmlJob.plan(source, "en"))
    assert out == expected
    assert tags(out) == tags(source)


@pytest.mark.parametrize(
    "source",
    [
        "<p>open <b>bold <i>both</p> after",
        "<div><p>a</div></p><td>b",
        "<p>x <img src=a.png alt='an image'> y<p>z",
        "text &amp; more &lt;tag&gt; <b>",
        "<p>\x00bad\ud800 chars</p>",
        "",
        "<script>var a = '<b>';</script><p>a</p>",
        "https://x.y<code>x</code>",  # a URL must not swallow the kept element after it
        "<b>é<b><a href='x'></a></b>&lt;</b>",  # empty elements inside empty elements
    ],
)
def test_malformed_markup_is_recovered_and_keeps_its_tags(source: str) -> None:
    """The output holds the tags of the input as the parser recovered it (what a
    browser would show), and parses again to the same."""
    recovered = HtmlJob.plan(source, "en").serialize()
    out = run(HtmlJob.plan(source, "en"))
    assert tags(out) == tags(recovered)
    assert tags(HtmlJob.plan(out, "en").serialize()) == tags(out)


def test_a_whole_document_keeps_head_and_doctype() -> None:
    source = (
        "<!DOCTYPE html><html><head><title>a b</title><style>p {}</style></head>"
        "<body><p>c <em>d</em></p></body></html>"
    )
    out = run(HtmlJob.plan(source, "en"))
    assert out.startswith("<!DOCTYPE html>")
    assert "<title>B A</title>" in out and "<style>p {}</style>" in out
    assert "<p><em>D</em> C</p>" in out


HTML_PIECES = [
    "<p>", "</p>", "<b>", "</b>", "<a href='x'>", "</a>", "<br>", "<img src=a>", "<!--", "-->",
    "<code>", "</code>", "<div>", "</div>", "&amp;", "&", "<", ">", "a", "b c", " ", "\n",
    "<span translate=no>", "</span>", "<script>", "</script>", "<!DOCTYPE html>", "<html>",
    "<td>", "<li>", "\x00", "é", "{0}", "https://x.y", "<i", '"', "'", "<![CDATA[", "]]>",
]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(HTML_PIECES), max_size=30))
def test_any_markup_is_translated_and_keeps_the_tags_it_was_recovered_with(
    pieces: list[str],
) -> None:
    source = "".join(pieces)
    job = HtmlJob.plan(source, "en")
    recovered = job.serialize()
    out = run(job)
    if not job.document:
        assert tags(out) == tags(recovered)
