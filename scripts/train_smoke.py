"""Train one of the paper's GPT-Neo models on a prepared folder for a few steps on CPU, logging the loss.

A smoke test of the whole path: prepared folder -> TinyStoriesDatasetPacked -> minGPT's DataLoader call ->
transformers GPTNeoForCausalLM, loss as minGPT computes it (cross-entropy, ignore_index=-1).

    python scripts/train_smoke.py --data demo_prepared --steps 50
    python scripts/train_smoke.py --help
"""
import argparse
import math
import sys
import time
from dataclasses import dataclass

from tinystories_hf.config import CommandParser, add_config_arguments, config_from_args, option
from tinystories_hf.errors import TinyStoriesError, check_int, flag
from tinystories_hf.supervision import cli_errors
from tinystories_hf.utils.extras import require


@dataclass
class TrainSmokeConfig:
    """Options of `train_smoke.py`; each field is also a `--option`."""

    data: str = option("tinystories_prepared", "prepared folder (written by tinystories-prepare)")
    steps: int = option(100, "optimizer steps")
    hidden_size: int = option(64, "model width: the paper's 64, 256 or 512 (8 layers each)")
    block_size: int = option(256, "tokens per training row (at most the model's context of 512)")
    batch_size: int = option(8, "rows per step")
    learning_rate: float = option(1e-3, "AdamW learning rate")
    packed: bool = option(True, "train on the packed stream (else one story per row)")
    num_workers: int = option(2, "DataLoader worker processes")
    log_every: int = option(10, "print the training loss every this many steps")
    eval_batches: int = option(4, "validation batches averaged at the end")
    seed: int = option(1337, "seed of the model initialisation and the sampler")

    def validate(self) -> None:
        """One error line for a value the run cannot use (a step count of 0 would train nothing)."""
        for name in ("steps", "batch_size", "log_every", "eval_batches"):
            check_int(name, getattr(self, name), low=1)
        check_int("num_workers", self.num_workers, low=0)
        if check_int("block_size", self.block_size, low=1) > 512:
            raise TinyStoriesError(f"{flag('block_size', self.block_size)} is beyond the models' context of 512")
        if not self.learning_rate > 0:
            raise TinyStoriesError(f"{flag('learning_rate', self.learning_rate)} must be above 0")


def mingpt_loss(model, x, y):
    """Cross-entropy of a transformers causal LM on minGPT-style `(x, y)`, targets -1 ignored."""
    import torch.nn.functional as F

    from tinystories_hf.training.adapters import IGNORE_INDEX

    logits = model(input_ids=x).logits
    return F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1), ignore_index=IGNORE_INDEX)


def train(config: TrainSmokeConfig) -> dict:
    """Run the smoke training; returns the logged losses."""
    import torch
    from transformers import GPTNeoForCausalLM

    from tinystories_hf.training.adapters import TinyStoriesDataset, TinyStoriesDatasetPacked
    from tinystories_hf.training.models import gpt_neo_config, parameter_count

    config.validate()
    torch.manual_seed(config.seed)
    dataset_class = TinyStoriesDatasetPacked if config.packed else TinyStoriesDataset
    train_data = dataset_class(config.data, split="train", block_size=config.block_size)
    val_data = dataset_class(config.data, split="validation", block_size=config.block_size)
    model = GPTNeoForCausalLM(gpt_neo_config(config.hidden_size, tokenizer=train_data.tokenizer))
    print(f"{dataset_class.__name__}: {len(train_data):,} train / {len(val_data):,} validation items of "
          f"{config.block_size} tokens; GPT-Neo hidden {config.hidden_size}: {parameter_count(model):,} parameters")

    # The DataLoader call of minGPT's Trainer.
    loader = torch.utils.data.DataLoader(
        train_data, sampler=torch.utils.data.RandomSampler(
            train_data, replacement=True, num_samples=int(1e10),
            generator=torch.Generator().manual_seed(config.seed)),
        shuffle=False, pin_memory=torch.cuda.is_available(), batch_size=config.batch_size,
        num_workers=config.num_workers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    model.train()
    losses, started = [], time.perf_counter()
    for step, (x, y) in zip(range(1, config.steps + 1), loader):
        loss = mingpt_loss(model, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if step % config.log_every == 0 or step in (1, config.steps):
            ms = 1000 * (time.perf_counter() - started) / step
            print(f"step {step:5d}  train loss {losses[-1]:.4f}  {ms:.0f} ms/step", flush=True)

    model.eval()
    count = min(len(val_data), config.eval_batches * config.batch_size)
    with torch.no_grad():
        batches = torch.utils.data.DataLoader(torch.utils.data.Subset(val_data, range(count)),
                                              batch_size=config.batch_size)
        val_losses = [mingpt_loss(model, x, y).item() for x, y in batches]
    val_loss = sum(val_losses) / len(val_losses)
    print(f"validation loss {val_loss:.4f} over {count} items (uniform guess: {math.log(train_data.get_vocab_size()):.4f})")
    return {"train": losses, "validation": val_loss}


@cli_errors
def main(argv=None) -> int:
    parser = CommandParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, TrainSmokeConfig)
    config = config_from_args(parser.parse_args(argv), TrainSmokeConfig)  # --help needs no torch
    config.validate()
    require("torch", extra="torch", needed_by="scripts/train_smoke.py")  # one error line without torch
    train(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
