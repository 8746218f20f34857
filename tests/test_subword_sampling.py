"""Subword regularization: sampled segmentations in training, deterministic elsewhere."""

from __future__ import annotations

import pytest
import sentencepiece as spm

from training.config import ConfigError, validate_config
from training.subword_sampling import sampled_examples
from training.trainer import Trainer


@pytest.fixture
def sampling_trainer(tiny_config: dict) -> Trainer:
    # the toy corpus's 60 pieces: with per-side vocabularies nearly every word would be
    # one piece that occurs, and its smaller pieces, never used alone, would be left out
    tiny_config["tokenizer"].update(sampling_alpha=0.5, per_side_vocab=False)
    return Trainer(validate_config(tiny_config))


def test_a_sample_spells_the_same_text_and_samples_differ(sampling_trainer: Trainer) -> None:
    tok = sampling_trainer.src_tok
    spm.set_random_generator_seed(1)
    texts = [e.src_text for e in sampling_trainer.train_set[:20]]
    assert all(texts)
    distinct = 0
    for text in texts:
        samples = {tuple(tok.sample(text, 0.5)) for _ in range(20)}
        distinct += len(samples) > 1
        for ids in samples:
            assert tok.decode([list(ids)]) == tok.decode(tok.encode([text]))
    assert distinct >= 5  # the short toy sentences: a quarter have several segmentations


def test_each_step_segments_its_pairs_anew_and_the_same_seed_draws_the_same(
    sampling_trainer: Trainer,
) -> None:
    trainer = sampling_trainer
    examples = trainer.train_set[:40]
    args = (trainer.src_tok, trainer.tgt_tok, 0.5)
    first = sampled_examples(examples, *args, seed=7, max_lengths=(100, 100))
    again = sampled_examples(examples, *args, seed=7, max_lengths=(100, 100))
    other = sampled_examples(examples, *args, seed=8, max_lengths=(100, 100))
    assert [(e.src, e.tgt) for e in first] == [(e.src, e.tgt) for e in again]
    assert [(e.src, e.tgt) for e in first] != [(e.src, e.tgt) for e in other]
    assert [(e.src, e.tgt) for e in first] != [(e.src, e.tgt) for e in examples]
    for sampled, plain in zip(first, examples, strict=True):
        assert trainer.tgt_tok.decode([sampled.tgt]) == trainer.tgt_tok.decode([plain.tgt])
    # a sample longer than its limit keeps the deterministic ids
    capped = sampled_examples(examples, *args, seed=7, max_lengths=(1, 1))
    assert all((e.src, e.tgt) == (p.src, p.tgt) for e, p in zip(capped, examples, strict=True))


def test_validation_keeps_the_deterministic_segmentation(tiny_config: dict) -> None:
    plain = Trainer(validate_config(tiny_config))
    tiny_config["tokenizer"]["sampling_alpha"] = 0.5
    tiny_config["output_dir"] = str(plain.out.parent / "sampling")
    sampling = Trainer(validate_config(tiny_config))
    sampling.run(max_steps=2)
    assert sampling.validator.sources == plain.validator.sources


def test_sampling_alpha_is_bounded(tiny_config: dict) -> None:
    tiny_config["tokenizer"]["sampling_alpha"] = 1.5
    with pytest.raises(ConfigError, match=r"tokenizer\.sampling_alpha"):
        validate_config(tiny_config)
