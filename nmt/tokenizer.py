"""SentencePiece subword models: training from text, encoding and decoding.

Every model this project trains uses the same special ids (pad 0, unk 1, bos 2,
eos 3); a user-supplied model must define pad, bos and eos.

A tokenizer may be restricted to a vocabulary: the subset of the SentencePiece
model's pieces that occur on one side of the training text. With a joint model,
English text then never yields a piece seen only in German, and the model's
embedding and output layer cover only the pieces of their own side (OpenNMT-py and
JoeyNMT build their vocabularies the same way). Model ids are then positions in that
subset; the special ids stay 0-3.
"""

from __future__ import annotations

import io
import itertools
import logging
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2

log = logging.getLogger(__name__)

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3

# SentencePiece's list calls spread the work over threads, at a fixed cost of ~0.6 ms a
# call; one call a text costs ~9 us a text. Below this many texts, call per text.
LIST_CALL_MIN = 128


def _per_item_or_list(call: Callable[[Any], Any], items: list[Any]) -> Any:
    """``call`` on the whole list, or item by item for short lists (see LIST_CALL_MIN)."""
    if len(items) < LIST_CALL_MIN:
        return [call(item) for item in items]
    return call(items)


def normalize(text: str) -> str:
    """NFC-normalize and strip; every text entering the system goes through here."""
    return unicodedata.normalize("NFC", text).strip()


def _restrict_proto(model_proto: bytes, keep: set[int]) -> bytes:
    """The model with every normal piece outside ``keep`` marked unused, so that
    segmentation never produces it (what SentencePiece's C++ SetVocabulary does)."""
    proto = sentencepiece_model_pb2.ModelProto()  # type: ignore[attr-defined]
    proto.ParseFromString(model_proto)
    piece_type = sentencepiece_model_pb2.ModelProto.SentencePiece  # type: ignore[attr-defined]
    for i, piece in enumerate(proto.pieces):
        if i not in keep and piece.type == piece_type.NORMAL:
            piece.type = piece_type.UNUSED
    return proto.SerializeToString()


class Tokenizer:
    """A SentencePiece model kept as bytes, so that it travels inside checkpoints.

    Args:
        model_proto: the serialized SentencePiece model.
        vocabulary: optional sorted SentencePiece ids this tokenizer may produce,
            the special pieces' among them; model id ``i`` is ``vocabulary[i]``.
    """

    def __init__(self, model_proto: bytes, vocabulary: Sequence[int] | None = None) -> None:
        self.model_proto = model_proto
        self.vocabulary = None if vocabulary is None else [int(i) for i in vocabulary]
        if self.vocabulary is None:
            self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        else:
            self.sp = spm.SentencePieceProcessor(
                model_proto=_restrict_proto(model_proto, set(self.vocabulary))
            )
        for name in ("pad", "bos", "eos"):
            if getattr(self.sp, f"{name}_id")() < 0:
                raise ValueError(
                    f"the SentencePiece model defines no <{name}> id; train it with "
                    f"--{name}_id set (this project uses pad=0, unk=1, bos=2, eos=3)"
                )
        # SentencePiece id -> model id; pieces outside the vocabulary become <unk>.
        self._to_model: list[int] | None = None
        if self.vocabulary is not None:
            vocab = self.vocabulary
            if (
                not vocab
                or any(a >= b for a, b in itertools.pairwise(vocab))
                or not 0 <= vocab[0] <= vocab[-1] < self.sp.get_piece_size()
            ):
                raise ValueError(
                    "a vocabulary is a sorted list of distinct ids of the SentencePiece "
                    f"model (0 to {self.sp.get_piece_size() - 1})"
                )
            if not self._specials() <= set(vocab):
                raise ValueError("a vocabulary must hold the ids of <pad>, <unk>, <s> and </s>")
            self._to_model = [vocab.index(self.sp.unk_id())] * self.sp.get_piece_size()
            for model_id, sp_id in enumerate(vocab):
                self._to_model[sp_id] = model_id

    def _specials(self) -> set[int]:
        return {self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id()}

    def restricted(self, texts: Iterable[str]) -> Tokenizer:
        """This model restricted to the pieces that occur in ``texts`` (plus specials)."""
        used = self._specials()
        for ids in self._sp_encode(texts):
            used.update(ids)
        return Tokenizer(self.model_proto, sorted(used))

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Read a ``.model`` file written by SentencePiece."""
        return cls(Path(path).read_bytes())

    @classmethod
    def train(
        cls,
        sentences: Iterable[str],
        vocab_size: int,
        model_type: str = "unigram",
        character_coverage: float = 1.0,
        max_sentences: int = 2_000_000,
        seed_sentencepiece_size: int = 1_000_000,
    ) -> Tokenizer:
        """Train a model on ``sentences`` in memory (nothing written to disk)."""
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            input_sentence_size=max_sentences,
            shuffle_input_sentence=True,
            seed_sentencepiece_size=seed_sentencepiece_size,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            num_threads=2,
            minloglevel=2,
            # A vocabulary larger than the data supports is shrunk instead of failing.
            hard_vocab_limit=False,
        )
        return cls(model.getvalue())

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.model_proto)

    @property
    def vocab_size(self) -> int:
        """Model ids: the restricted vocabulary's size, or all pieces."""
        return len(self.vocabulary) if self.vocabulary is not None else self.sp.get_piece_size()

    @property
    def pad_id(self) -> int:
        return self._model_id(self.sp.pad_id())

    @property
    def bos_id(self) -> int:
        return self._model_id(self.sp.bos_id())

    @property
    def eos_id(self) -> int:
        return self._model_id(self.sp.eos_id())

    @property
    def unk_id(self) -> int:
        return self._model_id(self.sp.unk_id())

    def spells(self, word: str) -> bool:
        """Whether ``word`` encodes without an unknown piece."""
        return self.unk_id not in self.encode([word])[0]

    def _model_id(self, sp_id: int) -> int:
        return sp_id if self._to_model is None else self._to_model[sp_id]

    def _sp_encode(self, texts: Iterable[str]) -> list[list[int]]:
        return _per_item_or_list(
            lambda x: self.sp.encode(x, out_type=int), [normalize(t) for t in texts]
        )

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Texts -> model subword ids (no BOS/EOS)."""
        encoded = self._sp_encode(texts)
        if self._to_model is None:
            return encoded
        to_model = self._to_model
        return [[to_model[i] for i in ids] for ids in encoded]

    def sample(self, text: str, alpha: float) -> list[int]:
        """One segmentation of ``text`` drawn from the unigram model's distribution over
        all of them, sharpened by ``alpha`` (subword regularization, Kudo 2018; BPE
        models drop merges with probability ``alpha`` instead). SentencePiece draws from
        its generator, seeded by ``sentencepiece.set_random_generator_seed``."""
        ids = self.sp.encode(
            normalize(text), out_type=int, enable_sampling=True, alpha=alpha, nbest_size=-1
        )
        return [self._model_id(i) for i in ids]

    def _sp_ids(self, ids: list[int]) -> list[int]:
        return ids if self.vocabulary is None else [self.vocabulary[i] for i in ids]

    def pieces(self, ids: list[int]) -> list[str]:
        """Model ids -> their pieces (``▁`` marks a word start)."""
        return [self.sp.id_to_piece(i) for i in self._sp_ids(ids)]

    def decode(self, ids: list[list[int]]) -> list[str]:
        """Model subword ids -> detokenized texts."""
        return _per_item_or_list(self.sp.decode, [self._sp_ids(x) for x in ids])
