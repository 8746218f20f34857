"""HTML documents: the text of every block translated as a unit, inline markup carried
to the target words that its source words align to, everything else left as it is.

A block (``<p>``, ``<li>``, ``<td>``, ...) holds runs of text and inline elements
(``<b>``, ``<a href>``, ``<span>``...). A run is translated as one text, sentence by
sentence, with every word remembering the inline elements it stood in. In the
translation, a target word stands in the elements of the source word it is aligned
to; each element then covers the target words from the first to the last such word
(clipped so that elements nest as they did), so that every element comes out exactly
once, with its attributes untouched. Elements that are not to be translated
(``<code>``, ``<pre>``, ``<script>``, ``<style>``, ``translate="no"``, comments) and
void elements (``<br>``, ``<img>``) are kept whole, as placeholders. lxml parses the
input and recovers malformed markup; the output is serialized by it, so it is
well-formed and escaped.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html import escape

from lxml import etree
from lxml import html as lxml_html

from nmt.documents.placeholders import Masked, Placeholder, mask, restore
from nmt.documents.sentences import split_sentences
from nmt.documents.text import copy_unknown
from nmt.translator import Translation

SKIPPED = {"script", "style", "code", "pre", "textarea", "noscript", "template", "svg", "math"}
INLINE = {
    "a", "abbr", "b", "bdi", "bdo", "big", "cite", "data", "del", "dfn", "em", "font", "i",
    "ins", "kbd", "label", "mark", "q", "s", "samp", "small", "span", "strong", "sub", "sup",
    "time", "tt", "u", "var",
}  # fmt: skip
FIRST_MARKER = 0xE000  # atoms stand in the text as private-use characters (see placeholders)
Word = tuple[str, tuple[int, ...]]  # a word and the inline elements it stands in (ids)


def _is_kept(node: etree._Element) -> bool:
    """Kept whole: comments, elements not to translate, elements without text."""
    if not isinstance(node.tag, str):  # comment or processing instruction
        return True
    return (
        node.tag in SKIPPED
        or node.get("translate") == "no"
        or node.tag in lxml_html.defs.empty_tags
    )


def _is_inline(node: etree._Element) -> bool:
    return isinstance(node.tag, str) and node.tag in INLINE and not _is_kept(node)


@dataclass
class Run:
    """The inline content of a block after ``after`` (a block child; None: from the
    start), as text (one marker character per kept node) and, for every character,
    the inline elements it stands in (ids, outermost first)."""

    block: etree._Element
    after: etree._Element | None
    nodes: list[etree._Element] = field(default_factory=list)  # the block's children in it
    chars: list[str] = field(default_factory=list)
    paths: list[tuple[int, ...]] = field(default_factory=list)
    elements: list[etree._Element] = field(default_factory=list)  # inline elements by id
    parents: list[int | None] = field(default_factory=list)
    atoms: list[etree._Element] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)  # the text as it was, markers for atoms

    def add_text(self, text: str | None, path: tuple[int, ...]) -> None:
        self.raw.append(text or "")
        for char in text or "":
            space = char.isspace()
            if space and (not self.chars or self.chars[-1] == " "):
                continue  # HTML collapses white space
            self.chars.append(" " if space else char)
            self.paths.append(path)

    def add(self, node: etree._Element, path: tuple[int, ...]) -> None:
        """``node`` and its tail, inside the elements ``path``."""
        if _is_kept(node) or not _is_inline(node):
            self.raw.append(chr(FIRST_MARKER + len(self.atoms)))
            self.chars.append(chr(FIRST_MARKER + len(self.atoms)))
            self.paths.append(path)
            self.atoms.append(node)
        else:
            self.elements.append(node)
            self.parents.append(path[-1] if path else None)
            inner = (*path, len(self.elements) - 1)
            self.add_text(node.text, inner)
            for child in node:
                self.add(child, inner)
        self.add_text(node.tail, path)

    @property
    def text(self) -> str:
        return "".join(self.chars).strip()

    def outer_space(self) -> tuple[str, str]:
        """The white space before and after the run's text, as it was."""
        raw = "".join(self.raw)
        body = raw.strip()
        if not body:
            return raw, ""
        return raw[: len(raw) - len(raw.lstrip())], raw[len(raw.rstrip()) :]

    @property
    def offset(self) -> int:
        """Where ``text`` starts in ``chars``."""
        return 1 if self.chars and self.chars[0] == " " else 0


def runs(block: etree._Element) -> Iterator[Run]:
    """The runs of ``block``: its text and inline children, up to each block child."""
    run = Run(block, None)
    run.add_text(block.text, ())
    for child in block:
        if _is_inline(child) or _is_kept(child):
            run.nodes.append(child)
            run.add(child, ())
            continue
        yield run
        run = Run(block, child)
        run.add_text(child.tail, ())
    yield run


@dataclass
class RunJob:
    """One run's units (sentences, merged where an element spans two) to translate."""

    run: Run
    units: list[tuple[int, int]]  # (start, stop) in run.text
    masked: list[Masked]

    @classmethod
    def plan(cls, run: Run, language: str, unknown: Callable[[str], bool] | None) -> RunJob:
        text = run.text
        segmented = split_sentences(text, language)
        spans, position = [], 0
        for gap, sentence in zip(segmented.gaps, segmented.sentences, strict=False):
            position += len(gap)
            spans.append((position, position + len(sentence)))
            position += len(sentence)
        units = _merge_across_elements(spans, run)
        return cls(run, units, [mask(text[a:b], unknown) for a, b in units])

    def path_at(self, unit: int, position: int) -> tuple[int, ...]:
        return self.run.paths[self.run.offset + self.units[unit][0] + position]

    def words(self, translations: list[Translation]) -> list[Word]:
        """The run's target words, each with the inline elements it stands in."""
        out: list[Word] = []
        for unit, (masked, t) in enumerate(zip(self.masked, translations, strict=True)):
            out += self._unit_words(unit, masked, t)
        return out

    def _unit_words(self, unit: int, masked: Masked, t: Translation) -> list[Word]:
        source_paths = [self.path_at(unit, start) for start, _ in masked.spans]
        aligned = {tgt: src for src, tgt in t.alignment if src < len(source_paths)}
        words = [
            (w, source_paths[aligned[i]] if i in aligned else ())
            for i, w in enumerate(copy_unknown(t))
        ]

        def placeholder(p: Placeholder) -> Word:
            return p.text, self.path_at(unit, p.start)

        return restore(words, t.alignment, masked.placeholders, placeholder)


def _merge_across_elements(spans: list[tuple[int, int]], run: Run) -> list[tuple[int, int]]:
    """Sentences joined where an inline element crosses the boundary between them
    (an element split over two translations would come out twice)."""
    if not spans:
        return []
    paths = run.paths[run.offset :]
    merged = [spans[0]]
    for start, stop in spans[1:]:
        before, after = set(paths[merged[-1][1] - 1]), set(paths[start])
        if before & after:
            merged[-1] = (merged[-1][0], stop)
        else:
            merged.append((start, stop))
    return merged


def _intervals(words: list[Word], run: Run) -> list[tuple[int, int]]:
    """For every inline element, the words it covers, [first, last]; elements nest as in
    the source, siblings do not overlap, and an element no word is aligned to gets an
    empty interval (last = first - 1) where it fits."""
    n = len(words)
    where: dict[int, list[int]] = {}
    for i, (_, path) in enumerate(words):
        for element in path:
            where.setdefault(element, []).append(i)
    intervals: list[tuple[int, int]] = []
    sibling_end: dict[int | None, int] = {}
    for element, parent in enumerate(run.parents):  # ids are in document order
        low, high = (0, n - 1) if parent is None else intervals[parent]
        low = max(low, sibling_end.get(parent, low - 1) + 1)
        positions = where.get(element, [])
        first = max(min(positions, default=low), low)
        last = min(max(positions, default=low - 1), high)
        if last < first:
            first, last = low, low - 1
        intervals.append((first, last))
        sibling_end[parent] = max(last, first - 1)
    return intervals


def _chains(words: list[Word], intervals: list[tuple[int, int]]) -> list[list[int]]:
    """The elements each word stands in, outermost first."""
    chains: list[list[int]] = [[] for _ in words]
    for element, (first, last) in enumerate(intervals):
        for i in range(first, last + 1):
            chains[i].append(element)
    return chains


class _Builder:
    """Appends text, elements and kept nodes to a container, keeping lxml's text/tail."""

    def __init__(self) -> None:
        self.root = etree.Element("run")
        self.stack: list[tuple[int, etree._Element]] = []
        self.made: dict[int, etree._Element] = {}  # every element's copy so far, by id

    def _top(self) -> etree._Element:
        return self.stack[-1][1] if self.stack else self.root

    def text(self, text: str) -> None:
        top = self._top()
        if len(top):
            top[-1].tail = (top[-1].tail or "") + text
        else:
            top.text = (top.text or "") + text

    def node(self, node: etree._Element) -> None:
        node.tail = None
        self._top().append(node)

    def empty(self, element: int, run: Run) -> None:
        """Inline element ``element``, which no target word stands in, as an empty copy:
        inside its parent's copy when there is one (open or not), else here."""
        shell = _shell(run.elements[element])
        parent = run.parents[element]
        (self.made[parent] if parent in self.made else self.root).append(shell)
        self.made[element] = shell

    def open_chain(self, chain: list[int], run: Run, space: str) -> None:
        """Close the open elements not in ``chain``, add ``space``, open the rest."""
        keep = 0
        while keep < min(len(chain), len(self.stack)) and self.stack[keep][0] == chain[keep]:
            keep += 1
        del self.stack[keep:]
        self.text(space)
        for element in chain[keep:]:
            new = _shell(run.elements[element])
            self._top().append(new)
            self.stack.append((element, new))
            self.made[element] = new


def _shell(original: etree._Element) -> etree._Element:
    """``original``'s tag and attributes, nothing inside. Copied rather than made anew:
    the HTML parser keeps attribute names that lxml would refuse to create."""
    shell = copy.copy(original)
    for child in list(shell):
        shell.remove(child)
    shell.text = shell.tail = None
    return shell


def rebuild(run: Run, words: list[Word], lead: str, trail: str) -> None:
    """Replace ``run``'s content in its block by the target ``words``."""
    intervals = _intervals(words, run)
    chains = _chains(words, intervals)
    empties: dict[int, list[int]] = {}
    for element, (first, last) in enumerate(intervals):
        if last < first:
            empties.setdefault(min(first, len(words)), []).append(element)
    build = _Builder()
    for i in range(len(words) + 1):
        for element in empties.get(i, []):
            build.empty(element, run)
        if i == len(words):
            break
        build.open_chain(chains[i], run, " " if i else "")
        text = words[i][0]
        marker = ord(text) - FIRST_MARKER if len(text) == 1 else -1
        if 0 <= marker < len(run.atoms):
            build.node(run.atoms[marker])
        else:
            build.text(text)
    _install(run, build.root, lead, trail)


def _install(run: Run, built: etree._Element, lead: str, trail: str) -> None:
    block = run.block
    for node in run.nodes:
        if node.getparent() is block:
            block.remove(node)
    index = 0 if run.after is None else block.index(run.after) + 1
    head = lead + (built.text or "")
    if run.after is None:
        block.text = head
    else:
        run.after.tail = head
    children = list(built)
    for offset, child in enumerate(children):
        block.insert(index + offset, child)
    if children:
        children[-1].tail = (children[-1].tail or "") + trail
    elif run.after is None:
        block.text = (block.text or "") + trail
    else:
        run.after.tail = (run.after.tail or "") + trail


# XML 1.0 forbids these characters; lxml refuses strings that hold them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass
class HtmlJob:
    """An HTML fragment or document: ``sources`` go to the model, ``finish`` gives the
    translated HTML."""

    root: etree._Element
    document: bool
    jobs: list[RunJob]
    unparsed: str | None = None  # markup with nothing to parse, returned as it is

    @classmethod
    def plan(
        cls, markup: str, language: str, unknown: Callable[[str], bool] | None = None
    ) -> HtmlJob:
        clean = _NOT_XML.sub("", markup)
        head = clean.lstrip()[:15].lower()
        document = head.startswith(("<!doctype", "<html"))
        try:
            if document:
                root = lxml_html.document_fromstring(clean)
            else:
                root = lxml_html.fragment_fromstring(clean, create_parent="div")
        except etree.ParserError:  # nothing in it to parse (a bare doctype, a comment)
            return cls(lxml_html.Element("div"), False, [], markup)
        jobs = [
            RunJob.plan(run, language, unknown)
            for block in _blocks(root)
            for run in runs(block)
            if any(c.isalnum() for c in run.text)  # else nothing to translate
        ]
        return cls(root, document, jobs)

    @property
    def sources(self) -> list[str]:
        return [m.text for job in self.jobs for m in job.masked]

    def finish(self, translations: list[Translation]) -> str:
        start = 0
        for job in self.jobs:
            mine = translations[start : start + len(job.masked)]
            start += len(mine)
            rebuild(job.run, job.words(mine), *job.run.outer_space())
        return self.serialize()

    def serialize(self) -> str:
        if self.unparsed is not None:
            return self.unparsed
        if self.document:
            tree = self.root.getroottree()
            return etree.tostring(
                tree, encoding="unicode", method="html", doctype=tree.docinfo.doctype
            )
        inner = [escape(self.root.text or "", quote=False)]
        inner += [etree.tostring(c, encoding="unicode", method="html") for c in self.root]
        return "".join(inner)


def _blocks(root: etree._Element) -> Iterator[etree._Element]:
    """Every element whose runs are translated, in document order: not inline, not
    kept, and not inside a kept element."""
    stack = [root]
    while stack:
        node = stack.pop()
        if _is_kept(node):
            continue
        if not _is_inline(node):
            yield node
        stack.extend(reversed(list(node)))
