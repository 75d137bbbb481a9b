"""Training throughput: tinystories-train against the floor a minimal plain PyTorch loop sets over the same
memory-mapped data (and, with --hf-trainer, the Hugging Face Trainer), per model; figures, never pass/fail.

For each model and each way: tokens/s over the steps after --warmup (the first steps build caches, compile),
seconds spent waiting for batches in those steps, and model FLOPs utilisation where the device's peak is
known (H100/H200 989, A100 312 bf16 dense TFLOP/s; on a CPU give --peak-tflops). Model FLOPs per token:
6 x parameters + 12 x layers x hidden x context (PaLM's count, attention over the whole context: an upper
bound for GPT-Neo's local layers, window 256). Every way gets the same batch, context, model and AdamW.

    python scripts/benchmark_train.py --data tinystories_prepared                    # 8M and 28M, recipe batch
    python scripts/benchmark_train.py --data demo --models 1M --batch-size 8 --context 128 --steps 12 \\
        --threads 1 --hf-trainer                                                     # what the README quotes
"""
import argparse
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tinystories_hf.config import CommandParser, add_config_arguments, config_from_args, option
from tinystories_hf.supervision import cli_errors

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


@dataclass
class TrainBenchmarkConfig:
    """Options of benchmark_train.py; each field is also a `--option`."""

    data: str = option("tinystories_prepared", "prepared folder (tinystories-prepare)")
    models: str = option("8M,28M", "comma-separated paper models (1M, 3M, 8M, 28M, 33M)")
    steps: int = option(30, "optimizer steps per way, --warmup of them not timed")
    warmup: int = option(3, "first steps left out of the rate")
    batch_size: int = option(64, "rows per step (the recipe's 64)")
    context: int = option(512, "tokens per row (the recipe's 512)")
    threads: int | None = option(None, "torch CPU threads (None: torch's default)", parse=int)
    num_workers: int = option(1, "DataLoader workers of every way")
    hf_trainer: bool = option(False, "also the Hugging Face Trainer (needs accelerate)")
    compile: bool = option(False, "torch.compile in tinystories-train and the plain loop")
    peak_tflops: float | None = option(None, "the device's peak TFLOP/s for MFU (default: known GPUs)", parse=float)


def flops_per_token(model, context: int) -> float:
    config = model.config
    params = sum(p.numel() for p in model.parameters())
    return 6 * params + 12 * config.num_layers * config.hidden_size * context


def plain_loop(config, name, tokenizer, device) -> dict:
    """The floor: DataLoader over TinyStoriesDatasetPacked, forward, cross-entropy, backward, clip, AdamW."""
    import torch
    from transformers import AutoModelForCausalLM

    from tinystories_hf.training.adapters import TinyStoriesDatasetPacked
    from tinystories_hf.training.options import TrainConfig
    from tinystories_hf.training.trainer import model_config

    settings = TrainConfig(data=config.data, model=name, context=config.context)
    data = TinyStoriesDatasetPacked(config.data, split="train", block_size=config.context)
    loader = torch.utils.data.DataLoader(data, batch_size=config.batch_size, shuffle=True, drop_last=True,
                                         num_workers=config.num_workers, pin_memory=device.type == "cuda",
                                         generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(model_config(settings, tokenizer)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, betas=(0.9, 0.95), weight_decay=0.1,
                                  fused=device.type == "cuda")
    step_model = torch.compile(model) if config.compile else model
    bf16 = device.type == "cuda"
    waits, batches = 0.0, iter(loader)
    for step in range(config.steps):
        if step == config.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, waits = time.perf_counter(), 0.0
        waited = time.perf_counter()
        x, y = next(batches)
        waits += time.perf_counter() - waited
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            logits = step_model(input_ids=x).logits
            loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=-1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    timed = config.steps - config.warmup
    return {"tokens_per_s": timed * config.batch_size * config.context / seconds, "data_wait_s": waits,
            "flops_per_token": flops_per_token(model, config.context), "parameters": sum(p.numel() for p in
                                                                                     model.parameters())}


def ours(config, name, folder: Path) -> dict:
    """tinystories-train for --steps steps; the rate from its metrics.jsonl between --warmup and the end."""
    from tinystories_hf.training.options import TrainConfig
    from tinystories_hf.training.trainer import train

    result = train(TrainConfig(data=config.data, output=str(folder / f"ours-{name}"), model=name,
                               context=config.context, batch_size=config.batch_size, max_steps=config.steps,
                               warmup_steps=1, eval_interval=10**9, eval_batches=1, checkpoint_interval=10**9,
                               log_interval=1, threads=config.threads, num_workers=config.num_workers,
                               compile=config.compile, progress=False, overwrite=True))
    lines = {m["step"]: m for m in result["metrics"] if "loss" in m}
    first, last = lines[config.warmup], lines[config.steps]
    seconds = last["elapsed_s"] - first["elapsed_s"]
    return {"tokens_per_s": (last["tokens"] - first["tokens"]) / seconds,
            "data_wait_s": last["data_wait_s"] - first["data_wait_s"]}


def hf_trainer(config, name, tokenizer, device, folder: Path) -> dict:
    """transformers' Trainer on the same packed rows (labels = inputs: the model shifts them itself)."""
    import torch
    from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

    from tinystories_hf.training.adapters import TinyStoriesDatasetPacked
    from tinystories_hf.training.options import TrainConfig
    from tinystories_hf.training.trainer import model_config

    class Rows(torch.utils.data.Dataset):
        def __init__(self):
            self.data = TinyStoriesDatasetPacked(config.data, split="train", block_size=config.context)

        def __len__(self):
            return len(self.data)

        def __getitem__(self, i):
            x, _ = self.data[i]
            return {"input_ids": x, "labels": x}

    class Clock(TrainerCallback):
        def __init__(self):
            self.times = {}

        def on_step_end(self, args, state, control, **kwargs):
            if device.type == "cuda":
                torch.cuda.synchronize()
            self.times[state.global_step] = time.perf_counter()

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(model_config(TrainConfig(model=name, context=config.context),
                                                          tokenizer))
    args = TrainingArguments(output_dir=str(folder / f"hf-{name}"), max_steps=config.steps,
                             per_device_train_batch_size=config.batch_size, learning_rate=5e-4, weight_decay=0.1,
                             adam_beta2=0.95, max_grad_norm=1.0, bf16=device.type == "cuda", report_to=[],
                             save_strategy="no", logging_strategy="no", dataloader_num_workers=config.num_workers,
                             use_cpu=device.type == "cpu", disable_tqdm=True, torch_compile=config.compile)
    clock = Clock()
    Trainer(model=model, args=args, train_dataset=Rows(), callbacks=[clock]).train()
    seconds = clock.times[config.steps] - clock.times[config.warmup]
    return {"tokens_per_s": (config.steps - config.warmup) * config.batch_size * config.context / seconds}


def benchmark(config: TrainBenchmarkConfig) -> dict:
    import torch

    from tinystories_hf.store.load import load_prepared

    if config.threads:
        torch.set_num_threads(config.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    peak = config.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    tokenizer = load_prepared(config.data)[1]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in config.models.split(","):
            row = {"plain loop": plain_loop(config, model, tokenizer, device)}
            row["tinystories-train"] = ours(config, model, Path(tmp))
            if config.hf_trainer:
                row["HF Trainer"] = hf_trainer(config, model, tokenizer, device, Path(tmp))
            for way in row.values():
                way["mfu"] = (way["tokens_per_s"] * row["plain loop"]["flops_per_token"] / (peak * 1e12)
                              if peak else None)
            results[model] = row
    return {"device": name, "threads": torch.get_num_threads(), "peak_tflops": peak, "results": results,
            "batch": f"{config.batch_size} x {config.context}", "steps": config.steps, "warmup": config.warmup}


@cli_errors
def main(argv=None) -> int:
    parser = CommandParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, TrainBenchmarkConfig)
    config = config_from_args(parser.parse_args(argv), TrainBenchmarkConfig)
    report = benchmark(config)
    print(f"{report['device']}, {report['threads']} threads; batch {report['batch']} tokens; rate over steps "
          f"{config.warmup + 1}..{config.steps}")
    print(f"{'model':<6} {'way':<18} {'tokens/s':>10} {'x floor':>8} {'MFU':>7} {'wait for batches':>17}")
    for model, row in report["results"].items():
        floor = row["plain loop"]["tokens_per_s"]
        for way, r in row.items():
            mfu = "-" if r["mfu"] is None else f"{r['mfu']:.1%}"
            wait = f"{r['data_wait_s']:.3f} s" if "data_wait_s" in r else "-"
            print(f"{model:<6} {way:<18} {r['tokens_per_s']:>10,.0f} {r['tokens_per_s'] / floor:>8.2f} {mfu:>7} "
                  f"{wait:>17}")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
