"""Training: config validation, data errors, checkpoints, exact resume, the CLI."""

from __future__ import annotations

import copy
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from nmt.checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from nmt.cli import main
from nmt.process import StopRequest
from training.batching import token_batches
from training.config import ConfigError, load_config, validate_config
from training.data import DataError, Example, read_parallel
from training.distributed import World
from training.schedule import WarmupPlateau
from training.state import (
    Optimization,
    Progress,
    restore_training_state,
    rng_state,
    training_state,
)
from training.trainer import Limits, RunClock, Trainer
from training.weight_average import WeightAverage


def write_yaml(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


# ------------------------------------------------------------------ config
def test_bad_config_value_names_the_field(tmp_path: Path, tiny_config: dict) -> None:
    tiny_config["train"]["batch_tokens"] = -5
    with pytest.raises(ConfigError, match=r"train\.batch_tokens"):
        load_config(write_yaml(tmp_path / "c.yaml", tiny_config))


def test_unknown_config_key_names_the_key(tiny_config: dict) -> None:
    tiny_config["model"]["hiden_size"] = 5
    with pytest.raises(ConfigError, match=r"model\.hiden_size: unknown key"):
        validate_config(tiny_config)


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parent.parent / "configs").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_shipped_config_is_valid(path: Path) -> None:
    config = load_config(path, [])
    assert config.data.src_lang != config.data.tgt_lang


def test_overrides_are_typed_and_checked(tmp_path: Path, tiny_config: dict) -> None:
    path = write_yaml(tmp_path / "c.yaml", tiny_config)
    cfg = load_config(path, ["train.batch_tokens=77", "model.attention=bahdanau"])
    assert cfg.train.batch_tokens == 77
    assert cfg.model.attention == "bahdanau"
    with pytest.raises(ConfigError, match=r"model\.attention"):
        load_config(path, ["model.attention=concat"])


def test_cli_reports_config_errors_without_traceback(
    tmp_path: Path, tiny_config: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny_config["train"]["learning_rate"] = "fast"
    code = main(["train", "--config", str(write_yaml(tmp_path / "c.yaml", tiny_config))])
    err = capsys.readouterr().err
    assert code == 2
    assert "train.learning_rate" in err
    assert "Traceback" not in err


# -------------------------------------------------------------------- data
def test_misaligned_corpus_fails_with_both_line_counts(tmp_path: Path) -> None:
    (tmp_path / "train.xx").write_text("a\nb\nc\n", encoding="utf-8")
    (tmp_path / "train.yy").write_text("a\nb\nc\nd\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"misaligned.*3 lines.*4"):
        read_parallel(tmp_path, "train", "xx", "yy")


def test_tsv_corpus_is_read_and_bad_lines_are_located(tmp_path: Path) -> None:
    (tmp_path / "c.tsv").write_text("a b\tA B\nc\tC\n", encoding="utf-8")
    assert read_parallel(tmp_path, "c.tsv", "xx", "yy") == (["a b", "c"], ["A B", "C"])
    (tmp_path / "bad.tsv").write_text("a\tA\nno tab here\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.tsv:2"):
        read_parallel(tmp_path, "bad.tsv", "xx", "yy")


def test_batches_respect_the_token_budget_and_cover_every_example() -> None:
    examples = [Example([1] * (i % 7 + 1), [1] * (i % 11 + 1)) for i in range(500)]
    batches = token_batches(examples, batch_tokens=60, max_sentences=50, seed=3, epoch=0)
    seen = sorted(i for b in batches for i in b)
    assert seen == list(range(500))
    for b in batches:
        longest = max(len(examples[i].tgt) + 1 for i in b)
        assert longest * len(b) <= 60 or len(b) == 1
    assert batches == token_batches(examples, 60, 50, seed=3, epoch=0)
    assert batches != token_batches(examples, 60, 50, seed=3, epoch=1)


# ------------------------------------------------------------- checkpoints
def test_truncated_checkpoint_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint({"model": {"w": torch.randn(100, 100)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        read_checkpoint(path)


def test_foreign_and_future_checkpoints_are_rejected(tmp_path: Path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint of this project"):
        read_checkpoint(tmp_path / "other.pt")
    save_checkpoint({"model": {}}, tmp_path / "future.pt")
    payload = torch.load(tmp_path / "future.pt", weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format version 99"):
        read_checkpoint(tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")


# ---------------------------------------------------------------- training
def params(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["model"]


class StopAfter(StopRequest):
    """A stop request that arrives once ``trainer`` has taken ``steps`` steps, as a
    signal would."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.trainer: Trainer | None = None

    @property  # type: ignore[override]
    def reason(self) -> str | None:
        assert self.trainer is not None
        return "told to stop" if self.trainer.progress.step >= self.steps else None


@pytest.mark.parametrize(
    ("weight_average", "sampling_alpha", "cooldown"),
    [(None, None, 0.0), (0.9, None, 0.0), (None, 0.5, 0.0), (None, None, 0.6)],
    ids=["plain", "weight_average", "subword_sampling", "cooldown"],
)
def test_resume_continues_exactly(
    tiny_config: dict,
    tmp_path: Path,
    weight_average: float | None,
    sampling_alpha: float | None,
    cooldown: float,
) -> None:
    tiny_config["train"]["weight_average_decay"] = weight_average
    tiny_config["train"]["cooldown_fraction"] = cooldown
    tiny_config["tokenizer"]["sampling_alpha"] = sampling_alpha
    if sampling_alpha is not None:  # per-side vocabularies leave the toy corpus one segmentation
        tiny_config["tokenizer"]["per_side_vocab"] = False
    straight = copy.deepcopy(tiny_config)
    straight["output_dir"] = str(tmp_path / "straight")
    Trainer(validate_config(straight)).run(max_steps=14)

    split = copy.deepcopy(tiny_config)
    split["output_dir"] = str(tmp_path / "split")
    first = Trainer(validate_config(split))
    stop = StopAfter(7)  # as a kill would: mid-epoch, after a validation, within the budget
    stop.trainer = first
    first.run(max_steps=14, stop=stop)
    resumed = Trainer(validate_config(split), resume=True)
    assert resumed.progress.step == 7
    resumed.run(max_steps=14)

    a, b = params(tmp_path / "straight" / "last.pt"), params(tmp_path / "split" / "last.pt")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    opt_a = read_checkpoint(tmp_path / "straight" / "last.pt")["training"]["optimizer"]
    opt_b = read_checkpoint(tmp_path / "split" / "last.pt")["training"]["optimizer"]
    for key, state in opt_a["state"].items():
        assert torch.equal(state["exp_avg_sq"], opt_b["state"][key]["exp_avg_sq"])
    for run in ("straight", "split"):
        assert params(tmp_path / run / "best.pt").keys() == a.keys()
    if weight_average is not None:
        avg_a = read_checkpoint(tmp_path / "straight" / "last.pt")["training"]["weight_average"]
        avg_b = read_checkpoint(tmp_path / "split" / "last.pt")["training"]["weight_average"]
        assert avg_a["updates"] == avg_b["updates"] == 14
        for x, y in zip(avg_a["average"], avg_b["average"], strict=True):
            assert torch.equal(x, y)


def test_a_gpu_runs_random_state_goes_back_to_its_gpu_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found on an H200: one process saved every GPU's state as a list, and resuming
    # handed that list to set_rng_state. The CUDA generator is stood in for on CPU.
    gpu_state = torch.arange(16, dtype=torch.uint8)
    restored: list[Any] = []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: gpu_state.clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device: restored.append(s))
    gpu = torch.device("cuda", 0)
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))])
    schedule = WarmupPlateau(optimizer, 1e-3, 0, 0.5, 2, 1e-5)
    opt = Optimization(optimizer, schedule, torch.amp.GradScaler("cpu", enabled=False))
    torch.save(training_state(opt, Progress(step=3), [rng_state(gpu)]), tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)  # as resume reads it
    assert restore_training_state(state, opt, World(), gpu, "last.pt").step == 3
    state["cuda_rng"] = [gpu_state]  # as the code before the fix wrote it
    restore_training_state(state, opt, World(), gpu, "last.pt")
    assert len(restored) == 2
    for got in restored:
        assert isinstance(got, torch.Tensor) and torch.equal(got, gpu_state)


def test_a_run_that_ends_on_its_budget_validates_its_last_weights(tiny_config: dict) -> None:
    Trainer(validate_config(tiny_config)).run(max_steps=6)  # valid_every 4
    out = Path(tiny_config["output_dir"])
    records = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "valid"] == [4, 6]
    stopped = Trainer(validate_config(tiny_config), resume=True)
    stop = StopAfter(7)  # a stop request is not the budget: no validation at step 7
    stop.trainer = stopped
    stopped.run(max_steps=10, stop=stop)
    records = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "valid"] == [4, 6]
    assert read_checkpoint(out / "last.pt")["step"] == 7


def test_a_time_budget_counts_every_invocation_of_the_run() -> None:
    clock = RunClock(minutes_before=30.0)  # resumed after 30 minutes of training
    limits = Limits(
        max_steps=None, max_minutes=40.0, stop_after_minutes=None, save_every_minutes=None
    )
    left = limits.minutes_left(clock)
    assert left is not None and 9.9 < left <= 10.0
    clock.agreed_minutes = 5.0
    assert limits.used(0, clock) == pytest.approx(35 / 40)  # where the cooldown stands
    assert not limits.spent(0, clock)
    assert Limits(None, 30.0, None, None).spent(0, clock)
    assert not Limits(None, None, 1.0, None).invocation_over(clock)


def test_stop_after_minutes_ends_the_invocation_and_resume_trains_what_is_left(
    tiny_config: dict, caplog: pytest.LogCaptureFixture
) -> None:
    out = Path(tiny_config["output_dir"])
    Trainer(validate_config(tiny_config)).run(max_steps=6, stop_after_minutes=1e-9)
    assert read_checkpoint(out / "last.pt")["step"] == 1
    Trainer(validate_config(tiny_config), resume=True).run(max_steps=6)
    records = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "valid"] == [4, 6]
    trained = read_checkpoint(out / "last.pt")["training"]["progress"]["minutes"]
    assert trained > 0
    for spent in ({"max_steps": 6}, {"max_minutes": trained / 2}):
        again = Trainer(validate_config(tiny_config), resume=True)
        with caplog.at_level(logging.WARNING, logger="training.trainer"):
            assert again.run(**spent).step == 6
        assert "nothing to train: the run's budget" in caplog.text
        caplog.clear()
    assert read_checkpoint(out / "last.pt")["step"] == 6


def test_cooldown_falls_linearly_over_the_end_of_the_budget(tiny_config: dict) -> None:
    tiny_config["train"].update(cooldown_fraction=0.5, learning_rate=0.01, min_learning_rate=0.0)
    Trainer(validate_config(tiny_config)).run(max_steps=10)
    records = (Path(tiny_config["output_dir"]) / "curve.jsonl").read_text().splitlines()
    lrs = {r["step"]: r["lr"] for r in map(json.loads, records) if r["kind"] == "train"}
    # step s trains with (1 - (s - 1) / 10) / 0.5 of the rate once past half the budget
    assert lrs == pytest.approx({2: 0.01, 4: 0.01, 6: 0.01, 8: 0.006, 10: 0.002})


def test_schedule_warms_up_holds_halves_on_a_plateau_and_cools_down() -> None:
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=1.0)
    schedule = WarmupPlateau(optimizer, 1.0, 4, 0.5, 1, min_lr=0.01, cooldown=0.25)
    assert [schedule.lr_at(s) for s in (1, 2, 4, 100)] == [0.25, 0.5, 1.0, 1.0]
    assert schedule.lr_at(100, budget_used=0.75) == 1.0
    assert schedule.lr_at(100, budget_used=0.875) == pytest.approx(0.5)
    assert schedule.lr_at(100, budget_used=1.0) == 0.01  # the floor
    assert not schedule.validated(30.0)
    assert not schedule.validated(29.0)  # one bad validation is within patience 1
    assert schedule.validated(29.5)
    assert schedule.lr_at(100, budget_used=0.875) == pytest.approx(0.25)
    assert schedule.step(2, budget_used=0.95) == pytest.approx(0.5 * 0.5 * 0.2)  # no floor yet
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_weight_average_is_validated_and_written_to_best_while_training_goes_on_raw(
    tiny_config: dict,
) -> None:
    tiny_config["train"].update(weight_average_decay=0.9, valid_every=6)
    trainer = Trainer(validate_config(tiny_config))
    trainer.run(max_steps=6)  # one validation, at the last step: it writes best.pt
    out = Path(tiny_config["output_dir"])
    raw, best = params(out / "last.pt"), params(out / "best.pt")
    average = read_checkpoint(out / "last.pt")["training"]["weight_average"]["average"]
    names = [name for name, p in trainer.model.named_parameters() if p.requires_grad]
    assert len(names) == len(average)
    for name, averaged in zip(names, average, strict=True):
        assert torch.equal(best[name], averaged), name
        assert torch.equal(raw[name], trainer.model.state_dict()[name]), name
    assert any(not torch.equal(raw[n], best[n]) for n in names)


def test_weight_average_warms_up_then_decays_and_swaps_back_exactly() -> None:
    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model, decay=0.5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update()  # first update: decay min(0.5, 2 / 11)
    expected = start + (1 - 2 / 11) * 1.0
    torch.testing.assert_close(average.average[0], expected)
    average.update()  # second: min(0.5, 3 / 12)
    expected = 0.25 * expected + 0.75 * (start + 1.0)
    torch.testing.assert_close(average.average[0], expected)
    for _ in range(10):  # from the ninth on: the decay itself
        average.update()
    with torch.no_grad():
        model.weight.sub_(1.0)
    average.update()
    torch.testing.assert_close(
        average.average[0], 0.5 * (start + 1.0) + 0.5 * start, atol=2e-3, rtol=0
    )
    own = model.weight.detach().clone()
    with average.swapped_in():
        torch.testing.assert_close(model.weight, average.average[0])
    assert torch.equal(model.weight, own)
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, decay=1.0)


def test_run_directory_holds_checkpoints_curve_and_config(tiny_config: dict) -> None:
    cfg = validate_config(tiny_config)
    Trainer(cfg).run(max_steps=8)
    out = Path(cfg.output_dir)
    for name in ("best.pt", "last.pt", "curve.jsonl", "config.yaml", "step_8.pt"):
        assert (out / name).is_file(), name
    assert not (out / "step_4.pt").exists()  # keep_last: 1
    records = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    valid = [r for r in records if r["kind"] == "valid"]
    assert [r["step"] for r in valid] == [4, 8]
    assert {"loss", "lr", "grad_norm", "tgt_tokens_per_s"} <= records[0].keys()
    best = read_checkpoint(out / "best.pt")
    assert "training" not in best  # inference checkpoints carry no optimizer state
    assert best["src_lang"] == "xx" and best["tgt_lang"] == "yy"
    assert "nrefs:1" in best["scores"]["bleu_signature"]
    loaded = load_model(out / "best.pt")
    assert loaded.step == best["step"]
    assert validate_config(yaml.safe_load((out / "config.yaml").read_text())) == cfg


@pytest.mark.parametrize("budget", [None, 5.0])
def test_log_lines_say_how_much_of_the_time_budget_is_left(
    tiny_config: dict, budget: float | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="training.trainer"):
        Trainer(validate_config(tiny_config)).run(max_steps=6, max_minutes=budget)
    lines = [r.getMessage() for r in caplog.records if "tgt tok/s" in r.getMessage()]
    assert len(lines) == 3  # log_every 2
    left = [re.search(r"\| ([\d.]+) min left$", line) for line in lines]
    if budget is None:
        assert not any(left)
    else:
        minutes = [float(m.group(1)) for m in left if m]
        assert len(minutes) == 3 and minutes == sorted(minutes, reverse=True)
        assert 4.0 < minutes[-1] <= minutes[0] <= budget


def test_resume_without_a_checkpoint_fails_clearly(tiny_config: dict) -> None:
    with pytest.raises(FileNotFoundError, match=r"no .*last\.pt to resume from"):
        Trainer(validate_config(tiny_config), resume=True)


def test_training_learns_the_toy_language(toy_model: Path) -> None:
    """A few hundred steps on the synthetic corpus reach a clearly non-trivial BLEU."""
    assert read_checkpoint(toy_model)["scores"]["valid_bleu"] > 30.0


def test_cli_train_translate_evaluate(
    tmp_path: Path, tiny_config: dict, corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_yaml(tmp_path / "c.yaml", tiny_config)
    out = tmp_path / "cli_run"
    assert (
        main(
            [
                "train",
                "--config",
                str(config),
                "--output-dir",
                str(out),
                "--max-steps",
                "4",
                "--set",
                "train.valid_every=2",
            ]
        )
        == 0
    )
    ckpt = out / "best.pt"
    assert ckpt.is_file()

    src = tmp_path / "in.txt"
    src.write_text("the dog runs\na big cat\n", encoding="utf-8")
    result = tmp_path / "out.jsonl"
    assert (
        main(
            [
                "translate",
                "--checkpoint",
                str(ckpt),
                "--input",
                str(src),
                "--output",
                str(result),
                "--format",
                "jsonl",
                "--beam-size",
                "3",
                "--n-best",
                "2",
            ]
        )
        == 0
    )
    lines = [json.loads(x) for x in result.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 2
    for record in lines:
        assert len(record["n_best"]) == 2
        assert 0.0 <= record["confidence"] <= 1.0
        n_src, n_tgt = len(record["source_words"]), len(record["target_words"])
        assert len(record["attention"]) == len(record["target_tokens"]) + 1  # + EOS row
        assert [t for _, t in record["alignment"]] == list(range(n_tgt))
        assert all(0 <= s < n_src for s, _ in record["alignment"])

    plots = tmp_path / "plots"
    args = ["translate", "--checkpoint", str(ckpt), "--input", str(src)]
    assert main([*args, "--output", str(tmp_path / "o.txt"), "--plot-attention", str(plots)]) == 0
    assert sorted(p.name for p in plots.iterdir()) == ["00001.png", "00002.png"]
    assert (plots / "00001.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(ckpt),
                "--src",
                str(corpus_dir / "val.xx"),
                "--ref",
                str(corpus_dir / "val.yy"),
                "--json",
                "--beam-size",
                "2",
            ]
        )
        == 0
    )
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) == {"bleu", "bleu_lc", "chrf"}
    assert "case:lc" in scores["bleu_lc"]["signature"]
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(tmp_path / "nope.pt"),
                "--src",
                str(src),
                "--ref",
                str(src),
            ]
        )
        == 2
    )


def test_reused_sentencepiece_model(tmp_path: Path, tiny_config: dict) -> None:
    first = Trainer(validate_config(tiny_config))
    first.src_tok.save(tmp_path / "joint.model")
    tiny_config["tokenizer"] = {"src_model": str(tmp_path / "joint.model")}
    tiny_config["output_dir"] = str(tmp_path / "reuse")
    second = Trainer(validate_config(tiny_config))
    assert second.src_tok.model_proto == first.src_tok.model_proto
    assert second.tgt_tok.model_proto == first.src_tok.model_proto
    assert second.src_tok.vocabulary == first.src_tok.vocabulary
    assert second.tgt_tok.vocabulary == first.tgt_tok.vocabulary
