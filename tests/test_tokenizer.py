"""Tokenizers: a joint SentencePiece model restricted to the pieces of one side."""

from __future__ import annotations

import random

import pytest
import torch
from toy import make_pairs

from nmt.checkpoint import load_model, read_checkpoint, save_checkpoint, tokenizers
from nmt.tokenizer import Tokenizer
from training.config import validate_config
from training.trainer import Trainer


@pytest.fixture(scope="module")
def joint() -> tuple[Tokenizer, list[str], list[str]]:
    pairs = make_pairs(200, seed=3)
    src, tgt = [s for s, _ in pairs], [t for _, t in pairs]
    return Tokenizer.train(src + tgt, vocab_size=60), src, tgt


def test_restricted_tokenizer_keeps_only_its_sides_pieces(joint) -> None:
    tok, src, tgt = joint
    src_tok, tgt_tok = tok.restricted(src), tok.restricted(tgt)
    assert src_tok.vocab_size < tok.vocab_size and tgt_tok.vocab_size < tok.vocab_size
    for side_tok, texts in ((src_tok, src), (tgt_tok, tgt)):
        ids = side_tok.encode(texts)
        assert max(max(x) for x in ids) < side_tok.vocab_size
        # the training text is segmented exactly as by the unrestricted model
        assert [side_tok.pieces(x) for x in ids] == [tok.pieces(x) for x in tok.encode(texts)]
        assert side_tok.decode(ids) == texts
    assert (src_tok.pad_id, src_tok.bos_id, src_tok.eos_id) == (
        tok.pad_id,
        tok.bos_id,
        tok.eos_id,
    )


def test_text_from_the_other_side_is_segmented_with_own_pieces_only() -> None:
    rng = random.Random(0)
    src = [" ".join(rng.choices(["ab", "ba", "a", "b", "aab", "bb"], k=4)) for _ in range(300)]
    tgt = [" ".join(rng.choices(["abba", "baab", "bab"], k=4)) for _ in range(300)]
    tok = Tokenizer.train(src + tgt, vocab_size=30)
    src_tok = tok.restricted(src)
    allowed = set(src_tok.pieces(list(range(src_tok.vocab_size))))
    text = "abba baab bab"
    whole = tok.pieces(tok.encode([text])[0])  # pieces only the target side uses
    assert not set(whole) & allowed
    own = src_tok.pieces(src_tok.encode([text])[0])
    assert set(own) <= allowed
    # re-segmenting keeps source pieces where mapping the joint pieces to <unk> keeps none
    assert len(set(own) - {"<unk>"}) >= 2


def test_bad_vocabularies_are_refused(joint) -> None:
    tok, _, _ = joint
    with pytest.raises(ValueError, match="sorted"):
        Tokenizer(tok.model_proto, [0, 1, 3, 2, 10])
    with pytest.raises(ValueError, match="sorted"):
        Tokenizer(tok.model_proto, [0, 1, 2, 3, tok.vocab_size])
    with pytest.raises(ValueError, match="<pad>"):
        Tokenizer(tok.model_proto, [1, 2, 3, 10])


def test_training_restricts_vocabularies_and_checkpoints_keep_them(
    tiny_config: dict, tmp_path
) -> None:
    trainer = Trainer(validate_config(tiny_config))
    src_tok, tgt_tok = trainer.src_tok, trainer.tgt_tok
    assert src_tok.vocabulary is not None and tgt_tok.vocabulary is not None
    assert src_tok.vocabulary != tgt_tok.vocabulary
    assert trainer.model.generator.out_features == tgt_tok.vocab_size
    trainer.run(max_steps=2)
    loaded = load_model(tmp_path / "run" / "last.pt")
    assert loaded.src_tokenizer.vocabulary == src_tok.vocabulary
    assert loaded.tgt_tokenizer.vocabulary == tgt_tok.vocabulary

    tiny_config["tokenizer"]["per_side_vocab"] = False
    tiny_config["output_dir"] = str(tmp_path / "full")
    full = Trainer(validate_config(tiny_config))
    assert full.src_tok.vocabulary is None
    assert full.model.generator.out_features == full.tgt_tok.vocab_size > tgt_tok.vocab_size


def test_checkpoints_without_vocabularies_still_load(tmp_path, toy_model) -> None:
    # a checkpoint written before vocabularies were restricted: full joint vocabulary
    payload = read_checkpoint(toy_model)
    full = Tokenizer(payload["tgt_spm"]).vocab_size
    del payload["src_vocab"], payload["tgt_vocab"]
    weights = payload["model"]
    for key in (
        "encoder.embed.weight",
        "decoder.embed.weight",
        "generator.weight",
        "generator.bias",
    ):
        weights[key] = torch.zeros(full, *weights[key].shape[1:])
    save_checkpoint(payload, tmp_path / "old.pt")
    loaded = load_model(tmp_path / "old.pt")
    assert loaded.src_tokenizer.vocabulary is None and loaded.tgt_tokenizer.vocabulary is None
    assert loaded.model.generator.out_features == full
    assert tokenizers(payload)[1].vocab_size == full
