"""Parallel corpora: reading, Unicode normalization, filtering and subword encoding."""

from __future__ import annotations

import itertools
import logging
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nmt.checkpoint import tokenizers
from nmt.text_files import open_text
from nmt.tokenizer import Tokenizer, normalize
from training.config import Config, DataConfig, TokenizerConfig
from training.run_ons import joined_pairs

log = logging.getLogger(__name__)

MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/{name}"
MULTI30K_SPLITS = ("train", "val", "test_2016_flickr")


class DataError(ValueError):
    """Unusable input data; the message says which file and why."""


def split_file(directory: Path, split: str, lang: str) -> Path:
    """``{dir}/{split}.{lang}``, plain or gzipped, whichever exists."""
    for name in (f"{split}.{lang}", f"{split}.{lang}.gz"):
        if (directory / name).is_file():
            return directory / name
    raise DataError(f"no file {split}.{lang} or {split}.{lang}.gz in {directory}")


def iter_parallel(
    directory: Path, split: str, src_lang: str, tgt_lang: str
) -> Iterator[tuple[str, str]]:
    """Aligned (source, target) lines of one split, read lazily.

    ``split`` is a file prefix (``train`` -> ``train.en.gz`` + ``train.de.gz``) or a
    TSV file name holding ``source<TAB>target`` per line.

    Raises:
        DataError: a file is missing or unreadable, a TSV line has not two fields, or
            the two files have different line counts (both counts are given).
    """
    try:
        if split.endswith(".tsv") or split.endswith(".tsv.gz"):
            path = directory / split
            if not path.is_file():
                raise DataError(f"TSV file {path} does not exist")
            for number, line in enumerate(open_text(path), start=1):
                fields = line.split("\t")
                if len(fields) != 2:
                    raise DataError(
                        f"{path}:{number}: expected 2 tab-separated fields, got {len(fields)}"
                    )
                yield fields[0], fields[1]
            return
        src_path = split_file(directory, split, src_lang)
        tgt_path = split_file(directory, split, tgt_lang)
        src_lines, tgt_lines = open_text(src_path), open_text(tgt_path)
        count = 0
        for src, tgt in itertools.zip_longest(src_lines, tgt_lines):
            if src is None or tgt is None:
                n_src = count + (src is not None) + sum(1 for _ in src_lines)
                n_tgt = count + (tgt is not None) + sum(1 for _ in tgt_lines)
                raise DataError(
                    f"misaligned corpus: {src_path} has {n_src} lines but {tgt_path} has {n_tgt}"
                )
            count += 1
            yield src, tgt
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise DataError(f"cannot read split {split!r} in {directory}: {err}") from err


def read_parallel(
    directory: Path, split: str, src_lang: str, tgt_lang: str
) -> tuple[list[str], list[str]]:
    """A whole split as aligned source and target lines (see ``iter_parallel``)."""
    pairs = list(iter_parallel(directory, split, src_lang, tgt_lang))
    return [s for s, _ in pairs], [t for _, t in pairs]


def download_multi30k(directory: Path, langs: tuple[str, ...]) -> None:
    """Fetch Multi30k task 1 raw files from the public repository into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for split in MULTI30K_SPLITS:
        for lang in langs:
            name = f"{split}.{lang}.gz"
            target = directory / name
            if target.is_file():
                continue
            log.info("downloading %s", MULTI30K_URL.format(name=name))
            tmp = target.with_suffix(".part")
            try:
                urllib.request.urlretrieve(MULTI30K_URL.format(name=name), tmp)
            except OSError as err:
                tmp.unlink(missing_ok=True)
                raise DataError(
                    f"{directory} does not exist and downloading Multi30k failed ({err}); "
                    "set data.dir to a folder with the files"
                ) from err
            tmp.rename(target)


@dataclass
class Example:
    """One encoded sentence pair (subword ids without BOS/EOS) and, for training
    pairs, its normalized text (which subword sampling segments anew)."""

    src: list[int]
    tgt: list[int]
    src_text: str = ""
    tgt_text: str = ""


def normalize_pairs(src: list[str], tgt: list[str]) -> tuple[list[str], list[str], int]:
    """NFC-normalize and drop pairs with an empty side; returns the count dropped."""
    kept_src, kept_tgt = [], []
    for raw_src, raw_tgt in zip(src, tgt, strict=True):
        s, t = normalize(raw_src), normalize(raw_tgt)
        if s and t:
            kept_src.append(s)
            kept_tgt.append(t)
    return kept_src, kept_tgt, len(src) - len(kept_src)


def encode_pairs(
    src: list[str],
    tgt: list[str],
    src_tok: Tokenizer,
    tgt_tok: Tokenizer,
    max_src_len: int,
    max_tgt_len: int,
    name: str,
    empty: int,
) -> list[Example]:
    """Encode normalized non-empty pairs, drop over-long ones, log the counts.

    ``empty`` is the number of pairs ``normalize_pairs`` already dropped, for the log.
    """
    src_ids, tgt_ids = src_tok.encode(src), tgt_tok.encode(tgt)
    examples = [
        Example(s, t, src_text, tgt_text)
        for s, t, src_text, tgt_text in zip(src_ids, tgt_ids, src, tgt, strict=True)
        if 0 < len(s) <= max_src_len and 0 < len(t) <= max_tgt_len
    ]
    too_long = len(src) - len(examples)
    log.info(
        "%s: %d pairs kept, %d dropped as empty, %d dropped as longer than %d/%d subwords",
        name,
        len(examples),
        empty,
        too_long,
        max_src_len,
        max_tgt_len,
    )
    if not examples:
        raise DataError(f"{name}: no sentence pairs left after filtering")
    return examples


@dataclass
class PreparedData:
    """Everything a run reads: tokenizers, encoded splits and raw validation references."""

    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    train: list[Example] | None  # None when streaming
    valid: list[Example]
    valid_refs: list[str]


def resolve_data_dir(data: DataConfig) -> Path:
    """The data folder, downloading Multi30k into it when it is missing and allowed."""
    directory = data.dir
    if directory.is_dir():
        return directory
    if not data.download:
        raise DataError(f"data folder {directory} does not exist (data.dir)")
    download_multi30k(directory, (data.src_lang, data.tgt_lang))
    return directory


def build_tokenizers(
    cfg: TokenizerConfig, src: list[str], tgt: list[str]
) -> tuple[Tokenizer, Tokenizer]:
    """Load the given SentencePiece models or train new ones on the training text."""
    if cfg.src_model is not None:
        src_tok = Tokenizer.load(cfg.src_model)
        tgt_tok = Tokenizer.load(cfg.tgt_model) if cfg.tgt_model is not None else src_tok
        log.info("reusing SentencePiece models %s, %s", cfg.src_model, cfg.tgt_model or "(joint)")
        return src_tok, tgt_tok
    started = time.monotonic()
    if cfg.joint:
        tok = Tokenizer.train(src + tgt, cfg.vocab_size, cfg.model_type, cfg.character_coverage)
        log.info(
            "trained joint SentencePiece model: %d pieces in %.1fs",
            tok.vocab_size,
            time.monotonic() - started,
        )
        return tok, tok
    src_tok = Tokenizer.train(
        src, cfg.src_vocab_size or cfg.vocab_size, cfg.model_type, cfg.character_coverage
    )
    tgt_tok = Tokenizer.train(
        tgt, cfg.tgt_vocab_size or cfg.vocab_size, cfg.model_type, cfg.character_coverage
    )
    log.info(
        "trained SentencePiece models: %d / %d pieces in %.1fs",
        src_tok.vocab_size,
        tgt_tok.vocab_size,
        time.monotonic() - started,
    )
    return src_tok, tgt_tok


def prepare_data(config: Config, resume: dict[str, Any] | None = None) -> PreparedData:
    """Read, normalize, tokenize and filter the training and validation splits.

    A resumed run takes its tokenizers from the checkpoint, never retrains them. With
    ``data.streaming`` the training split is not loaded (``train`` is None: see
    ``training.streaming``); the tokenizers are trained on its first
    ``tokenizer.sample_pairs`` pairs.
    """
    data = config.data
    directory = resolve_data_dir(data)
    valid_src, valid_tgt = read_parallel(directory, data.valid, data.src_lang, data.tgt_lang)
    if data.max_valid_sentences is not None:
        valid_src = valid_src[: data.max_valid_sentences]
        valid_tgt = valid_tgt[: data.max_valid_sentences]
    pairs = iter_parallel(directory, data.train, data.src_lang, data.tgt_lang)
    if data.streaming:
        pairs = itertools.islice(pairs, config.tokenizer.sample_pairs)
    sample = list(pairs) if resume is None or not data.streaming else []
    train_src, train_tgt, empty = normalize_pairs([s for s, _ in sample], [t for _, t in sample])
    del sample
    if resume is not None:
        src_tok, tgt_tok = tokenizers(resume)
    else:
        src_tok, tgt_tok = build_tokenizers(config.tokenizer, train_src, train_tgt)
        if config.tokenizer.per_side_vocab:
            src_tok, tgt_tok = src_tok.restricted(train_src), tgt_tok.restricted(train_tgt)
            log.info(
                "vocabularies: %d source / %d target pieces occur in the training text",
                src_tok.vocab_size,
                tgt_tok.vocab_size,
            )
    train = None
    if not data.streaming:
        if data.run_on_fraction > 0:
            run_on_src, run_on_tgt = joined_pairs(
                train_src, train_tgt, data.run_on_fraction, config.train.seed
            )
            log.info("train: %d run-on pairs added (data.run_on_fraction)", len(run_on_src))
            train_src, train_tgt = train_src + run_on_src, train_tgt + run_on_tgt
        train = encode_pairs(
            train_src,
            train_tgt,
            src_tok,
            tgt_tok,
            data.max_src_len,
            data.max_tgt_len,
            "train",
            empty,
        )
    valid, valid_refs = encode_validation(valid_src, valid_tgt, src_tok, tgt_tok)
    return PreparedData(src_tok, tgt_tok, train, valid, valid_refs)


def encode_validation(
    src: list[str], tgt: list[str], src_tok: Tokenizer, tgt_tok: Tokenizer
) -> tuple[list[Example], list[str]]:
    """Validation pairs and their references: every pair of any length is kept (BLEU is
    over the whole set) except those with a side of no subwords (blank, or invisible
    characters only), which have nothing to score or to attend to."""
    src, tgt, _ = normalize_pairs(src, tgt)
    kept = [
        (Example(s, t), ref)
        for s, t, ref in zip(src_tok.encode(src), tgt_tok.encode(tgt), tgt, strict=True)
        if s and t
    ]
    if len(kept) < len(src):
        log.warning("validation: %d pairs dropped: a side has no subwords", len(src) - len(kept))
    if not kept:
        raise DataError("validation: no sentence pairs left after filtering")
    return [e for e, _ in kept], [ref for _, ref in kept]
