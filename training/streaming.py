"""Training batches of an epoch; for corpora larger than memory, read, encode and
batch them in chunks.

Memory holds one chunk (``data.chunk_pairs`` pairs) at a time, whatever the corpus
size. Batches are formed and shuffled inside a chunk, so a corpus sorted by topic or
length should be shuffled once on disk beforehand (``shuf``, or ``paste | shuf``).
The order depends only on (seed, epoch), so a resumed run skips the batches it has
already trained on and continues exactly.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from nmt.tokenizer import Tokenizer
from training.batching import token_batches
from training.config import Config
from training.data import (
    Example,
    iter_parallel,
    normalize_pairs,
    resolve_data_dir,
)


def iter_chunks(config: Config, src_tok: Tokenizer, tgt_tok: Tokenizer) -> Iterator[list[Example]]:
    """The training split as lists of encoded, filtered examples of one chunk each."""
    data = config.data
    pairs = iter_parallel(resolve_data_dir(data), data.train, data.src_lang, data.tgt_lang)
    while chunk := list(itertools.islice(pairs, data.chunk_pairs)):
        src, tgt, _ = normalize_pairs([s for s, _ in chunk], [t for _, t in chunk])
        yield [
            Example(s, t, src_text, tgt_text)
            for s, t, src_text, tgt_text in zip(
                src_tok.encode(src), tgt_tok.encode(tgt), src, tgt, strict=True
            )
            if 0 < len(s) <= data.max_src_len and 0 < len(t) <= data.max_tgt_len
        ]


def stream_batches(
    config: Config, src_tok: Tokenizer, tgt_tok: Tokenizer, epoch: int
) -> Iterator[list[Example]]:
    """One epoch of token-bucketed batches, chunk after chunk."""
    tc = config.train
    for number, chunk in enumerate(iter_chunks(config, src_tok, tgt_tok)):
        if not chunk:
            continue
        # each chunk its own seed, so that equal chunks are not batched alike
        seed = tc.seed * 7919 + number
        for indices in token_batches(chunk, tc.batch_tokens, tc.max_sentences, seed, epoch):
            yield [chunk[i] for i in indices]


def epoch_batches(
    config: Config,
    train: list[Example] | None,
    src_tok: Tokenizer,
    tgt_tok: Tokenizer,
    epoch: int,
) -> tuple[Iterator[list[Example]], int | None]:
    """One epoch's batches as example lists, and their number if known in advance:
    from ``train`` in memory, or streamed from disk when ``train`` is None."""
    if train is None:
        return stream_batches(config, src_tok, tgt_tok, epoch), None
    tc = config.train
    order = token_batches(train, tc.batch_tokens, tc.max_sentences, tc.seed, epoch)
    return ([train[i] for i in indices] for indices in order), len(order)
