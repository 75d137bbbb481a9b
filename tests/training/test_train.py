"""tinystories-train: resume bit for bit, the saved model loads with AutoModelForCausalLM, torchrun ranks see
disjoint data, bad input is one line. A tiny GPT-Neo (2 layers of 32) on the demo folder keeps each test fast."""
import dataclasses
import hashlib
import json
import math
import sys

import processes
import pytest
import safetensors.torch
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GPTNeoConfig, GPTNeoForCausalLM

import tinystories_hf.training.trainer as train_module
from tinystories_hf import TinyStoriesDatasetPacked
from tinystories_hf.training.commands import train_main
from tinystories_hf.training.options import TrainConfig
from tinystories_hf.training.trainer import learning_rate, train


def tiny_config(folder, vocab_size: int, *, context: int = 64):
    """A GPT-Neo config.json: 2 layers (global, local) of 32, 2 heads."""
    config = GPTNeoConfig(vocab_size=vocab_size, hidden_size=32, num_layers=2, num_heads=2, window_size=32,
                          attention_types=[[["global", "local"], 1]], max_position_embeddings=context)
    path = folder / f"tiny-{vocab_size}.json"
    path.write_text(config.to_json_string(), encoding="utf-8")
    return str(path)


@pytest.fixture
def options(prepared_demo, tmp_path):
    """Options of a short run of the tiny model on the demo folder (vocabulary 500)."""
    return {"data": str(prepared_demo.output), "model": tiny_config(tmp_path, 500), "context": 32, "batch_size": 8,
            "grad_accum": 2, "max_steps": 8, "warmup_steps": 3, "eval_interval": 4, "eval_batches": 2,
            "log_interval": 1, "checkpoint_interval": 3, "num_workers": 0, "threads": 1, "progress": False, "seed": 7}


def losses(metrics):
    return {m["step"]: m["loss"] for m in metrics if "loss" in m}


def test_schedule_is_warmup_then_cosine_to_the_floor():
    config = TrainConfig(learning_rate=1e-3, min_learning_rate=1e-4, warmup_steps=4, max_steps=14)
    assert [learning_rate(s, config) for s in range(4)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    # cosine over steps 4..13: halfway (step 8.5) is the midpoint of peak and floor
    assert learning_rate(13, config) == pytest.approx(1e-4)
    assert learning_rate(4, config) == pytest.approx(1e-3)
    middle = 1e-4 + 0.5 * (1 + math.cos(math.pi * 4 / 9)) * 9e-4
    assert learning_rate(8, config) == pytest.approx(middle)


def test_resume_after_ctrl_c_logs_the_same_losses_bit_for_bit(options, tmp_path, monkeypatch):
    whole = train(TrainConfig(output=str(tmp_path / "whole"), **options))
    assert sorted(losses(whole["metrics"])) == list(range(1, 9))
    assert losses(whole["metrics"])[8] < losses(whole["metrics"])[1]  # it learns

    schedule = train_module.learning_rate

    def interrupted_at_step_5(step, config):  # Ctrl-C while step 6 (0-based 5) starts
        if step == 5:
            raise KeyboardInterrupt
        return schedule(step, config)

    monkeypatch.setattr(train_module, "learning_rate", interrupted_at_step_5)
    cut = dict(options, num_workers=1)  # how batches are loaded is no part of the run
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(output=str(tmp_path / "cut"), **cut))
    state = json.loads((tmp_path / "cut" / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 5 and state["sampler"]["consumed"] == 5 * 8
    monkeypatch.setattr(train_module, "learning_rate", schedule)
    resumed = train(TrainConfig(output=str(tmp_path / "cut"), resume=True, **options))
    assert losses(resumed["metrics"]) == losses(whole["metrics"])  # exact floats, steps 1..8
    val = [(m["step"], m["val_loss"]) for m in resumed["metrics"] if "val_loss" in m]
    assert val == [(m["step"], m["val_loss"]) for m in whole["metrics"] if "val_loss" in m]
    for name in ("model", "best"):
        a = safetensors.torch.load_file(str(tmp_path / "whole" / name / "model.safetensors"))
        b = safetensors.torch.load_file(str(tmp_path / "cut" / name / "model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "cut" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_saved_model_loads_with_auto_classes_and_generates(options, tmp_path, prepared_demo):
    result = train(TrainConfig(output=str(tmp_path / "run"), **dict(options, max_steps=2, eval_interval=2)))
    folder = tmp_path / "run" / "model"
    model = AutoModelForCausalLM.from_pretrained(str(folder))
    assert type(model) is GPTNeoForCausalLM and model.config.vocab_size == 500
    # the reference: the checkpoint's tensors in a model built by hand from the same config
    reference = GPTNeoForCausalLM(GPTNeoConfig.from_json_file(str(folder / "config.json")))
    safetensors.torch.load_model(reference, str(tmp_path / "run" / "checkpoint" / "model.safetensors"))
    model.eval(), reference.eval()
    x = TinyStoriesDatasetPacked(str(prepared_demo.output), split="validation", block_size=32)[0][0][None]
    with torch.no_grad():
        assert torch.equal(model(input_ids=x).logits, reference(input_ids=x).logits)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=True)
    ids = tokenizer("Once upon a time", return_tensors="pt")["input_ids"]
    assert ids[0].tolist() == prepared_demo.tokenizer.encode("Once upon a time")
    out = model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    assert out.shape[1] <= ids.shape[1] + 5 and torch.equal(out[0, :ids.shape[1]], ids[0])
    assert result["val_perplexity"] == pytest.approx(math.exp(result["val_loss"]))
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines if "loss" in m] == [1, 2] and lines[-1]["step"] == 2


def test_two_torchrun_ranks_train_on_disjoint_rows(options, tmp_path, prepared_demo):
    run = tmp_path / "ddp"
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "tinystories_hf.training.commands", options["data"], "--output", str(run), "--model", options["model"],
            "--context", "32", "--batch-size", "8", "--max-steps", "3", "--eval-batches", "1", "--eval-interval", "3",
            "--threads", "1", "--num-workers", "0", "--log-items", "--no-progress"]
    result = processes.run(argv, timeout=240, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = [(run / f"items-rank{r}.txt").read_text().split() for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 3 * 4  # 3 steps of 8 rows, 4 per rank
    data = TinyStoriesDatasetPacked(options["data"], split="train", block_size=32)
    digests = {hashlib.blake2b(x.numpy().astype("<i8").tobytes(), digest_size=8).hexdigest() for x, _ in data}
    assert set(seen[0]) | set(seen[1]) <= digests  # real rows of the split
    assert not set(seen[0]) & set(seen[1]) and len(set(seen[0] + seen[1])) == 24  # disjoint, none twice
    assert (run / "model" / "model.safetensors").exists() and not (run / "items-rank2.txt").exists()


def test_bad_input_is_one_line(options, tmp_path, capsys, monkeypatch, prepared_demo):
    def cli(**changes):
        values = dict(options, **changes)
        argv = [values.pop("data")]
        for name, value in values.items():
            dashed = "--" + name.replace("_", "-")
            argv += [dashed] if value is True else [f"--no-{dashed[2:]}"] if value is False else [dashed, str(value)]
        code = train_main(argv)
        err = capsys.readouterr().err.strip()
        return code, err

    code, err = cli(output=str(tmp_path / "small"), model=tiny_config(tmp_path, 300))
    assert code == 2 and err.count("\n") == 0 and "vocab_size 300 is smaller than the 500 ids" in err
    assert not (tmp_path / "small").exists()

    assert cli(output=str(tmp_path / "a"), max_steps=2) == (0, "")
    code, err = cli(output=str(tmp_path / "a"), max_steps=2, seed=8, resume=True)
    assert code == 2 and err.count("\n") == 0 and "saved by another run (--seed 7, this one has --seed 8)" in err
    code, err = cli(output=str(tmp_path / "a"), max_steps=2)
    assert code == 2 and "--resume" in err and "--overwrite" in err
    code, err = cli(output=str(tmp_path / "b"), max_steps=2, resume=True)
    assert code == 2 and "no checkpoint to resume" in err

    from tinystories_hf.store import load

    def without_validation(path):
        dataset_dict, tokenizer = load.load_prepared(path)
        return type(dataset_dict)({"train": dataset_dict["train"]}), tokenizer

    monkeypatch.setattr(train_module, "load_prepared", without_validation)
    code, err = cli(output=str(tmp_path / "c"))
    assert code == 2 and err.count("\n") == 0 and "no 'validation' split (it has train)" in err
    assert dataclasses.fields(TrainConfig)  # the options the CLI above spelled exist


def test_benchmark_script_prints_each_way(prepared_demo, capsys):
    import runpy

    from conftest import REPO

    main = runpy.run_path(str(REPO / "scripts" / "benchmark_train.py"))["main"]
    assert main(["--data", str(prepared_demo.output), "--models", "1M", "--steps", "3", "--warmup", "1",
                 "--batch-size", "2", "--context", "32", "--threads", "1", "--num-workers", "0"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    row = report["results"]["1M"]
    assert set(row) == {"plain loop", "tinystories-train"} and all(r["tokens_per_s"] > 0 for r in row.values())
    assert row["plain loop"]["flops_per_token"] == 6 * row["plain loop"]["parameters"] + 12 * 8 * 64 * 32
