"""Seconds per training step of the paper's GPT-Neo models, and of a tiny one, on this machine's CPU.

One step is what a training loop does per batch: forward, loss, backward, AdamW step, on a batch of real
packed blocks of the prepared folder (`TinyStoriesDatasetPacked`, batch x block tokens), float32, torch's
default thread count. Each model gets `--warmup` untimed steps, then `--steps` timed steps; the line gives
their median and range. The machine's 1-minute load average is printed before and after: on a shared machine
the figures move with it, so compare rows of one run. Much of a CPU step is the kernel zeroing the pages of
the activations, which glibc's malloc maps afresh and gives back on every step (blocks above its mmap
threshold); keeping the freed memory for reuse, as tcmalloc and jemalloc do, is several times faster:

    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=2147483648:glibc.malloc.trim_threshold=4294967296 \
        python scripts/cpu_step_time.py --data tinystories_prepared

    python scripts/cpu_step_time.py --data tinystories_prepared
    python scripts/cpu_step_time.py --data tinystories_prepared --hidden-sizes 64,256 --batch-size 8 --block-size 512
"""
import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field

from tinystories_hf.config import CommandParser, add_config_arguments, config_from_args
from tinystories_hf.errors import TinyStoriesError, flag
from tinystories_hf.supervision import cli_errors

TINY = "tiny"  # 2 layers of hidden 64, 2 heads: the shape of the README's nanoGPT and llama2.c CPU lines


@dataclass
class CpuStepTimeConfig:
    """Options of `cpu_step_time.py`."""

    data: str = field(default="tinystories_prepared", metadata={"help": "prepared folder (vocabulary and batches)"})
    hidden_sizes: str = field(default=f"{TINY},64,256", metadata={
        "help": f"models, comma-separated: '{TINY}' (2 layers, hidden 64, 2 heads) or a paper hidden size (8 "
                "layers, 16 heads: 64, 256 = the paper's 8M-parameter model, 512)"})
    batch_size: int = field(default=8, metadata={"help": "blocks per step"})
    block_size: int = field(default=512, metadata={"help": "tokens per block (the paper's context is 512)"})
    steps: int = field(default=3, metadata={"help": "timed steps per model"})
    warmup: int = field(default=3, metadata={"help": "untimed steps per model before them (the optimizer's state, "
                                                     "the allocator's heap: the first steps are slower)"})
    seed: int = field(default=1337, metadata={"help": "seed of the models' initial weights"})


def _model(name: str, tokenizer):
    from transformers import GPTNeoForCausalLM

    from tinystories_hf.training.models import gpt_neo_config

    if name == TINY:
        return GPTNeoForCausalLM(gpt_neo_config(64, tokenizer=tokenizer, num_layers=2, num_heads=2))
    return GPTNeoForCausalLM(gpt_neo_config(int(name), tokenizer=tokenizer))


def _load() -> str:
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


@cli_errors
def main(argv=None) -> int:
    parser = CommandParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, CpuStepTimeConfig)
    config = config_from_args(parser.parse_args(argv), CpuStepTimeConfig)
    if config.steps < 1 or config.warmup < 0:
        raise TinyStoriesError(f"{flag('steps', config.steps)} must be at least 1 and {flag('warmup', config.warmup)} "
                               "at least 0")
    names = [name.strip() for name in config.hidden_sizes.split(",")]
    if not all(name == TINY or name.isdigit() for name in names):
        raise TinyStoriesError(f"{flag('hidden_sizes', config.hidden_sizes)}: each entry is '{TINY}' or a hidden "
                               "size (64, 256, 512)")
    import torch

    from tinystories_hf import TinyStoriesDatasetPacked
    from tinystories_hf.training.adapters import IGNORE_INDEX
    from tinystories_hf.training.models import parameter_count

    train = TinyStoriesDatasetPacked(config.data, split="train", block_size=config.block_size)
    if len(train) < config.batch_size:
        raise TinyStoriesError(f"{config.data}: train holds {len(train)} blocks of {config.block_size} tokens, fewer "
                               f"than {flag('batch_size', config.batch_size)}; pass a larger folder")
    x, y = (torch.stack(column) for column in zip(*(train[i] for i in range(config.batch_size))))
    print(f"batch {config.batch_size} x {config.block_size} tokens, float32, {torch.get_num_threads()} torch "
          f"threads, {_load()}")
    print(f"{'model':>6} {'parameters':>11} {'s/step':>7} {'range':>13}")
    for name in names:
        torch.manual_seed(config.seed)
        model = _model(name, train.tokenizer)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        times = []
        for _ in range(config.warmup + config.steps):
            start = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x).logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE_INDEX)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - start)
        timed = times[config.warmup:]
        print(f"{name:>6} {parameter_count(model):>11,} {statistics.median(timed):>7.2f} "
              f"{min(timed):>6.2f}-{max(timed):<6.2f}")
    print(_load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
