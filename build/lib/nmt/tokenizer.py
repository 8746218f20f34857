"""SentencePiece subword models: training from text, encoding and decoding.

Every model this project trains uses the same special ids (pad 0, unk 1, bos 2,
eos 3); a user-supplied model must define pad, bos and eos.
"""

from __future__ import annotations

import io
import logging
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

log = logging.getLogger(__name__)

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


def normalize(text: str) -> str:
    """NFC-normalize and strip; every text entering the system goes through here."""
    return unicodedata.normalize("NFC", text).strip()


class Tokenizer:
    """A SentencePiece model kept as bytes, so that it travels inside checkpoints."""

    def __init__(self, model_proto: bytes) -> None:
        self.model_proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        for name in ("pad", "bos", "eos"):
            if getattr(self.sp, f"{name}_id")() < 0:
                raise ValueError(
                    f"the SentencePiece model defines no <{name}> id; train it with "
                    f"--{name}_id set (this project uses pad=0, unk=1, bos=2, eos=3)"
                )

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
        return self.sp.get_piece_size()

    @property
    def pad_id(self) -> int:
        return self.sp.pad_id()

    @property
    def bos_id(self) -> int:
        return self.sp.bos_id()

    @property
    def eos_id(self) -> int:
        return self.sp.eos_id()

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Texts -> subword ids (no BOS/EOS)."""
        return self.sp.encode([normalize(t) for t in texts], out_type=int)

    def pieces(self, ids: list[int]) -> list[str]:
        return [self.sp.id_to_piece(i) for i in ids]

    def decode(self, ids: list[list[int]]) -> list[str]:
        """Subword ids -> detokenized texts."""
        return self.sp.decode(ids)
