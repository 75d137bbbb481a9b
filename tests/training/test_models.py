"""The paper's GPT-Neo configurations and the scripts around the adapters (model_sizes, train_smoke, benchmark)."""
import math
import re
import runpy
import sys

import processes
import pytest
import torch
from conftest import REPO
from transformers import GPTNeoForCausalLM

from tinystories_hf import TinyStoriesDatasetPacked, TinyStoriesError, gpt_neo_config, paper_configs, parameter_count


def script(name):
    return runpy.run_path(str(REPO / "scripts" / f"{name}.py"))["main"]


def gpt_neo_parameters(vocab, context, layers, hidden):
    """Counted by hand from GPT-Neo's modules: token and position embeddings; per layer two LayerNorms (4d),
    q/k/v without bias (3d^2), output projection (d^2 + d), MLP d -> 4d -> d (8d^2 + 5d); final LayerNorm;
    the LM head is tied to the token embedding."""
    return vocab * hidden + context * hidden + layers * (12 * hidden**2 + 10 * hidden) + 2 * hidden


def test_paper_configs_follow_the_paper_and_the_tokenizer(prepared_sample, capsys):
    tokenizer = prepared_sample.tokenizer
    configs = paper_configs(tokenizer=prepared_sample.output)  # the folder: the tokenizer saved in it
    assert sorted(configs) == [64, 256, 512]
    for hidden, config in configs.items():
        assert (config.hidden_size, config.num_layers, config.num_heads, config.window_size) == (hidden, 8, 16, 256)
        assert config.max_position_embeddings == 512
        assert config.attention_layers == ["global", "local"] * 4
        assert config.vocab_size == tokenizer.vocab_size == 10_000
        assert config.eos_token_id == config.bos_token_id == tokenizer.eos_id
    assert parameter_count(GPTNeoForCausalLM(configs[64])) == gpt_neo_parameters(10_000, 512, 8, 64) == 1_071_232
    assert gpt_neo_config(64, tokenizer=tokenizer, num_layers=3).attention_layers == ["global", "local", "global"]

    assert script("model_sizes")(["--data", str(prepared_sample.output)]) == 0
    printed = capsys.readouterr().out
    for hidden in configs:
        count = gpt_neo_parameters(10_000, 512, 8, hidden)
        assert re.search(rf"^\s+{hidden}\s+8\s+16\s+256\s+512\s+10000\s+{count:,}\s", printed, re.MULTILINE)


def test_train_smoke_logs_a_falling_loss(prepared_sample, capsys):
    argv = ["--data", str(prepared_sample.output), "--steps", "4", "--block-size", "32", "--batch-size", "2",
            "--num-workers", "0", "--log-every", "1", "--eval-batches", "1", "--learning-rate", "0.01"]
    assert script("train_smoke")(argv) == 0
    printed = capsys.readouterr().out
    losses = [float(v) for v in re.findall(r"^step\s+\d+\s+train loss ([\d.]+)", printed, re.MULTILINE)]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert "1,071,232 parameters" in printed
    assert re.search(r"^validation loss [\d.]+ over 2 items", printed, re.MULTILINE)

    assert script("train_smoke")(["--data", str(prepared_sample.output / "missing")]) == 2
    assert "error:" in capsys.readouterr().err
    assert script("train_smoke")(["--data", str(prepared_sample.output), "--block-size", "1024"]) == 2
    assert "--block-size 1024" in capsys.readouterr().err


def test_script_options_that_cannot_work_are_one_line_before_any_work(capsys):
    """A step count of 0 trained nothing and printed a loss; 0 batches, 0 logging interval, 0 evaluation
    batches, a negative learning rate or a hidden size the 16 heads do not divide ended in tracebacks."""
    data = ["--data", "nowhere"]  # checked later than the options: each line below comes first
    for argv, line in [(["--steps", "0"], "error: --steps 0 must be at least 1"),
                       (["--batch-size", "0"], "error: --batch-size 0 must be at least 1"),
                       (["--log-every", "0"], "error: --log-every 0 must be at least 1"),
                       (["--eval-batches", "0"], "error: --eval-batches 0 must be at least 1"),
                       (["--num-workers", "-1"], "error: --num-workers -1 must be at least 0"),
                       (["--learning-rate", "-1"], "error: --learning-rate -1.0 must be above 0"),
                       (["--block-size", "513"], "error: --block-size 513 is beyond the models' context of 512")]:
        assert script("train_smoke")(data + argv) == 2
        assert capsys.readouterr().err.strip() == line
    assert script("measure_resume")(["--stream", "demo", "--every", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --every 0 must be at least 1"
    assert script("measure_resume")(["--data", "nowhere"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --data nowhere: no prepare_info.json there")


def test_gpt_neo_config_sizes_and_tokenizer_are_checked(prepared_demo):
    tokenizer = prepared_demo.tokenizer
    cases = [({"hidden_size": 100}, "hidden_size=100 is not a multiple of the 16 attention heads"),
             ({"hidden_size": 64, "num_layers": 0}, "num_layers=0 must be at least 1"),
             ({"hidden_size": 64.0}, "hidden_size=64.0 must be an integer"),
             ({"hidden_size": 64, "context": 0}, "context=0 must be at least 1")]
    for options, message in cases:
        with pytest.raises(TinyStoriesError) as failure:
            gpt_neo_config(tokenizer=tokenizer, **options)
        assert str(failure.value).startswith(message)
    with pytest.raises(TinyStoriesError, match="^tokenizer= is a dict: pass the prepared folder's TinyStoriesTokenizer"):
        gpt_neo_config(64, tokenizer={"vocab_size": 10})
    assert gpt_neo_config(48, tokenizer=tokenizer, num_heads=3).hidden_size == 48


def test_benchmark_reference_reads_the_same_windows_as_the_packed_dataset(prepared_sample):
    reference_class = runpy.run_path(str(REPO / "scripts" / "benchmark.py"))["ListPackedReference"]
    reference = reference_class(prepared_sample.output, split="validation", block_size=64)
    packed = TinyStoriesDatasetPacked(prepared_sample.output, split="validation", block_size=64)
    assert len(reference) == len(packed) > 100
    for i in range(len(packed)):
        assert all(torch.equal(a, b) for a, b in zip(reference[i], packed[i]))


def test_benchmark_runs_every_pipeline_and_prints_the_goals(tmp_path):
    """Not a timed test: the benchmark on a tiny corpus must run end to end and print every row and ratio."""
    run = processes.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), "--stories", "300",
                          "--hf-ceiling", "--old-pipeline", "--old-stories", "100", "--scale", "2",
                          "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line.split("|")[1].strip() for line in run.stdout.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["fastokens ceiling (the fastest exact encoder)", "tiktoken ceiling",
                        "tinystories-prepare", "tinystories-prepare, cached rerun", "HF tokenizer ceiling",
                        "old serial pipeline", "tinystories-prepare, 2x corpus"]
    for goal in ("prepare / fastokens ceiling", "(goal >= 0.5)", "prepare / tiktoken ceiling", "(goal >= 3.0)",
                 "bytes/token (goal <= 2.05)", "cached rerun / first run wall time", "(goal <= 10%)",
                 "peak RSS of prepare", "peak memory at 2x / 1x", "prepare / old pipeline", "prepare stages: load"):
        assert goal in run.stdout


def test_cpu_step_time_times_each_model_on_real_batches(prepared_sample, capsys):
    argv = ["--data", str(prepared_sample.output), "--hidden-sizes", "tiny,64", "--batch-size", "2",
            "--block-size", "16", "--steps", "2"]
    assert script("cpu_step_time")(argv) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^batch 2 x 16 tokens, float32, \d+ torch threads, load average [\d.]+ on \d+ CPUs$", printed,
                     re.MULTILINE), printed
    for name, layers in (("tiny", 2), ("64", 8)):  # the tiny model: 2 layers of hidden 64 (2 heads)
        count = gpt_neo_parameters(10_000, 512, layers, 64)
        row = re.search(rf"^\s+{name}\s+{count:,}\s+([\d.]+)\s+([\d.]+)-([\d.]+)\s*$", printed, re.MULTILINE)
        assert row, printed
        median, low, high = map(float, row.groups())
        assert 0 < low <= median <= high

    assert script("cpu_step_time")(["--data", str(prepared_sample.output), "--hidden-sizes", "big"]) == 2
    assert capsys.readouterr().err.strip().endswith("error: --hidden-sizes big: each entry is 'tiny' or a hidden "
                                                     "size (64, 256, 512)")
    assert script("cpu_step_time")(["--data", str(prepared_sample.output), "--block-size", "16",
                                    "--batch-size", "10000000"]) == 2
    assert "--batch-size 10000000; pass a larger folder" in capsys.readouterr().err
