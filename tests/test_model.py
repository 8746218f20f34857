"""Model invariants: padding does not leak, attention is a distribution, it can learn."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nmt.dropout import Dropout, WordDropout
from nmt.model import ModelConfig, Seq2Seq

PAD, BOS, EOS = 0, 2, 3
VARIANTS = [(c, a) for c in ("lstm", "gru") for a in ("bahdanau", "luong_dot", "luong_general")]


def tiny_model(cell: str = "lstm", attention: str = "luong_general", layers: int = 1) -> Seq2Seq:
    cfg = ModelConfig(
        cell=cell,
        attention=attention,
        emb_size=12,
        encoder_hidden=8,
        decoder_hidden=16,
        encoder_layers=layers,
        decoder_layers=layers,
        dropout=0.0,
    )
    return Seq2Seq(cfg, src_vocab=20, tgt_vocab=18, pad_id=PAD)


def token_nll(model: Seq2Seq, src, lengths, tgt_in, tgt_out) -> torch.Tensor:
    outputs, _ = model(src, lengths, tgt_in)
    logp = torch.log_softmax(model.generator(outputs), dim=-1)
    return -logp.gather(2, tgt_out.unsqueeze(2)).squeeze(2)  # B x T


@pytest.mark.parametrize(("cell", "attention"), VARIANTS)
def test_padding_does_not_change_loss_or_attention(cell: str, attention: str) -> None:
    model = tiny_model(cell, attention, layers=2).eval()
    alone_src = torch.tensor([[5, 6, 7]])
    alone_in, alone_out = torch.tensor([[BOS, 9, 10]]), torch.tensor([[9, 10, EOS]])
    batch_src = torch.tensor([[5, 6, 7, PAD, PAD], [4, 8, 9, 11, 12]])
    batch_in = torch.tensor([[BOS, 9, 10, PAD, PAD, PAD], [BOS, 5, 6, 7, 8, 9]])
    batch_out = torch.tensor([[9, 10, EOS, PAD, PAD, PAD], [5, 6, 7, 8, 9, EOS]])
    with torch.no_grad():
        nll_alone = token_nll(model, alone_src, torch.tensor([3]), alone_in, alone_out)
        nll_batch = token_nll(model, batch_src, torch.tensor([3, 5]), batch_in, batch_out)
        _, attn_alone = model(alone_src, torch.tensor([3]), alone_in)
        _, attn_batch = model(batch_src, torch.tensor([3, 5]), batch_in)
    torch.testing.assert_close(nll_batch[0, :3], nll_alone[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(attn_batch[0, :3, :3], attn_alone[0], rtol=1e-5, atol=1e-6)
    # the summed loss of the batch is the sum of its sentences' losses
    loss_batch = model.loss(batch_src, torch.tensor([3, 5]), batch_in, batch_out)
    assert loss_batch.item() == pytest.approx(nll_batch[batch_out != PAD].sum().item(), rel=1e-5)


@pytest.mark.parametrize(("cell", "attention"), VARIANTS)
def test_attention_is_zero_on_padding_and_sums_to_one(cell: str, attention: str) -> None:
    model = tiny_model(cell, attention).eval()
    src = torch.tensor([[5, 6, PAD, PAD], [4, 8, 9, 11], [7, PAD, PAD, PAD]])
    lengths = torch.tensor([2, 4, 1])
    tgt_in = torch.randint(4, 18, (3, 5))
    with torch.no_grad():
        _, attn = model(src, lengths, tgt_in)  # B x T x S
    assert attn.shape == (3, 5, 4)
    torch.testing.assert_close(attn.sum(-1), torch.ones(3, 5))
    padding = (src == PAD).unsqueeze(1).expand_as(attn)
    assert torch.all(attn[padding] == 0)
    assert torch.all(attn[~padding] > 0)


def test_tiny_model_overfits_a_handful_of_pairs() -> None:
    model = tiny_model()
    src = torch.tensor([[5, 6, 7, PAD], [8, 9, PAD, PAD], [10, 11, 12, 13], [14, 15, 16, PAD]])
    lengths = torch.tensor([3, 2, 4, 3])
    tgt_out = torch.tensor(
        [[7, 6, 5, EOS, PAD], [9, 8, EOS, PAD, PAD], [13, 12, 11, 10, EOS], [16, 15, 14, EOS, PAD]]
    )
    tgt_in = torch.cat(
        [torch.full((4, 1), BOS), tgt_out[:, :-1].masked_fill(tgt_out[:, :-1] == EOS, PAD)], 1
    )
    n_tokens = int((tgt_out != PAD).sum())
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    first = None
    for _ in range(150):
        loss = model.loss(src, lengths, tgt_in, tgt_out) / n_tokens
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert first > 2.0
    assert loss.item() < 0.02


def test_tied_embeddings_share_the_output_matrix_at_the_embedding_size() -> None:
    cfg = ModelConfig(emb_size=16, encoder_hidden=8, decoder_hidden=32, tie_embeddings=True)
    model = Seq2Seq(cfg, 20, 18, PAD)
    assert model.generator.weight is model.decoder.embed.weight
    src = torch.randint(3, 20, (2, 5))
    tgt_in = torch.randint(3, 18, (2, 4))
    outputs, _ = model(src, torch.tensor([5, 5]), tgt_in)
    assert outputs.shape == (2, 4, 16)  # the attentional vector has emb_size units
    memory, state = model.encode(src, torch.tensor([5, 5]))
    log_probs, _, state = model.step(tgt_in[:, 0], memory, state)
    assert log_probs.shape == (2, 18) and state.feed.shape == (2, 16)
    untied = Seq2Seq(cfg.model_copy(update={"tie_embeddings": False}), 20, 18, PAD)
    assert untied.decoder.output_size == 32


def test_size_mismatches_are_rejected_by_the_config() -> None:
    with pytest.raises(ValueError, match="luong_dot"):
        ModelConfig(attention="luong_dot", encoder_hidden=8, decoder_hidden=32)


def test_dropout_zeroes_about_p_and_keeps_the_expectation() -> None:
    drop = Dropout(0.3)
    x = torch.ones(200, 500)
    y = drop(x)
    zeroed = (y == 0).float().mean().item()
    assert 0.28 < zeroed < 0.32
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.7))
    assert abs(y.mean().item() - 1.0) < 0.02
    assert torch.equal(drop.eval()(x), x)
    assert torch.equal(Dropout(1.0)(x), torch.zeros_like(x))


def test_word_dropout_zeroes_whole_token_vectors_about_p_of_the_time() -> None:
    torch.manual_seed(0)
    drop = WordDropout(0.25)
    x = torch.ones(100, 40, 16)  # B x S x E
    y = drop(x)
    zeroed_rows = (y == 0).all(dim=-1)
    kept_rows = (y != 0).all(dim=-1)
    assert torch.equal(zeroed_rows | kept_rows, torch.ones(100, 40, dtype=torch.bool))
    assert 0.22 < zeroed_rows.float().mean().item() < 0.28
    assert torch.allclose(y[kept_rows], torch.tensor(1 / 0.75))
    assert torch.equal(drop.eval()(x), x)


def test_source_word_dropout_acts_on_the_encoder_in_training_only() -> None:
    cfg = ModelConfig(emb_size=16, encoder_hidden=8, decoder_hidden=16, dropout=0.0)
    plain = Seq2Seq(cfg, 20, 18, PAD)
    dropping = Seq2Seq(cfg.model_copy(update={"source_word_dropout": 0.5}), 20, 18, PAD)
    dropping.load_state_dict(plain.state_dict())
    src = torch.randint(3, 20, (4, 9))
    lengths = torch.full((4,), 9)
    plain.eval()
    dropping.eval()
    assert torch.equal(plain.encoder(src, lengths)[0], dropping.encoder(src, lengths)[0])
    plain.train()
    dropping.train()
    torch.manual_seed(0)
    assert not torch.equal(plain.encoder(src, lengths)[0], dropping.encoder(src, lengths)[0])
    with pytest.raises(ValueError):
        ModelConfig(source_word_dropout=1.0)


def reference_step(
    model: Seq2Seq, prev: torch.Tensor, src: torch.Tensor, lengths: torch.Tensor, state
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """One decoder step of Luong et al. (2015) as a plain stack of ``nn.LSTMCell`` /
    ``nn.GRUCell`` carrying the decoder's weights, and attention written out (general:
    score = h . W m): what ``Decoder.step`` must compute, however it is arranged."""
    decoder = model.decoder
    memory, _ = model.encoder(src, lengths)  # B x S x M
    x = torch.cat([decoder.embed(prev), state.feed], dim=1)
    hs = []
    for i, layer in enumerate(decoder.layers):
        size = layer.weight_h.size(1)
        cell = (nn.LSTMCell if layer.cell == "lstm" else nn.GRUCell)(x.size(1), size)
        cell.weight_ih.data.copy_(layer.weight_x)
        cell.weight_hh.data.copy_(layer.weight_h)
        cell.bias_ih.data.copy_(layer.bias)
        cell.bias_hh.data.copy_(layer.bias_h if layer.bias_h is not None else 0)
        if layer.cell == "lstm":
            h, _ = cell(x, (state.h[i], state.c[i]))
        else:
            h = cell(x, state.h[i])
        hs.append(h)
        x = h
    scores = torch.einsum("bd,bsd->bs", hs[-1], decoder.attention.key_layer(memory))
    scores = scores.masked_fill(src == PAD, float("-inf"))
    attn = torch.softmax(scores, dim=-1)
    context = torch.einsum("bs,bsm->bm", attn, memory)
    out = torch.tanh(decoder.combine(torch.cat([hs[-1], context], dim=1)))
    return torch.log_softmax(model.generator(out), dim=-1), attn, hs


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@torch.no_grad()
def test_decoder_step_equals_lstm_and_gru_cells_with_the_same_weights(cell: str) -> None:
    model = tiny_model(cell, layers=2).eval()
    src, lengths = torch.tensor([[5, 6, 7], [4, 8, PAD]]), torch.tensor([3, 2])
    memory, state = model.encode(src, lengths)
    for prev in (torch.tensor([BOS, BOS]), torch.tensor([9, 10]), torch.tensor([11, 4])):
        expected_logp, expected_attn, expected_h = reference_step(model, prev, src, lengths, state)
        logp, attn, state = model.step(prev, memory, state)
        torch.testing.assert_close(logp, expected_logp)
        torch.testing.assert_close(attn, expected_attn)
        for h, e in zip(state.h, expected_h, strict=True):
            torch.testing.assert_close(h, e)
