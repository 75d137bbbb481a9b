"""Options of `tinystories-train` and `tinystories-backdoor-eval`: one dataclass each, the one source of defaults
for the Python API (`train(TrainConfig(...))`, `backdoor_eval(BackdoorEvalConfig(...))`) and the CLI (generated
from the fields, so `--help` shows what the API uses, each default with where it comes from).

Importing this module needs no torch, so `--help` and a bad option work without the `[train]` extra
(`commands.py` imports the trainer, torch and transformers' models only once the options are checked).

Sources of the recipe defaults:
    [card]     the TinyStories-33M model card (huggingface.co/roneneldan/TinyStories-33M): learning rate 5e-4,
               weight decay 0.1, Adam betas 0.9/0.95, context 512.
    [backdoor] the public TinyStories backdoor recipe: batch 64 x 512 tokens, 2,000 warmup steps then cosine
               decay to 5e-5, gradient clipping 1.0, dropout 0.1; sampling at temperature 0.8, top-k 40.
"""
from dataclasses import dataclass

from ..config import check_types, option, parse_sample_size
from ..errors import TinyStoriesError, check_int, flag

PAPER_MODELS = ("1M", "3M", "8M", "28M", "33M")


@dataclass
class TrainConfig:
    """Everything `train()` needs; each field is also a `tinystories-train --option`.

    Example:
        >>> config = TrainConfig(data="tinystories_prepared", output="run", model="1M", max_steps=100)
        >>> config.validate()
    """

    data: str = option("tinystories_prepared", "prepared folder (tinystories-prepare) with train and validation")
    output: str = option("run", "run folder: checkpoint/, model/, best/, metrics.jsonl, loss.png")
    model: str = option("8M", f"the paper's GPT-Neo ({', '.join(PAPER_MODELS)}: hidden 64/128/256/512 x 8 layers, "
                        "768 x 4 layers; local window 256) or a config.json; vocabulary and EOS from the folder")
    learning_rate: float = option(5e-4, "peak AdamW learning rate [card]")
    min_learning_rate: float = option(5e-5, "learning rate the cosine decay ends at, on the last step [backdoor]")
    warmup_steps: int = option(2000, "steps of linear warmup from 0 to the peak [backdoor]")
    weight_decay: float = option(0.1, "AdamW weight decay, on matrices only (not biases, LayerNorms) [card]")
    beta1: float = option(0.9, "Adam beta1 [card]")
    beta2: float = option(0.95, "Adam beta2 [card]")
    grad_clip: float = option(1.0, "clip the gradient's global norm to this; 0 turns it off [backdoor]")
    dropout: float = option(0.1, "dropout of embeddings, attention and residuals [backdoor]")
    context: int = option(512, "tokens per training row (packed blocks of the train split) [card]")
    batch_size: int = option(64, "rows per optimizer step, all ranks and accumulation steps together [backdoor]")
    grad_accum: int = option(1, "micro-batches per optimizer step (batch_size / grad_accum / ranks rows each)")
    max_steps: int = option(10_000, "optimizer steps; the cosine decay ends here")
    eval_interval: int = option(500, "validation loss and perplexity every this many steps (and at the end)")
    eval_batches: int = option(20, "validation micro-batches per evaluation (always the split's first ones)")
    checkpoint_interval: int = option(1000, "save RUN/checkpoint/ every this many steps (and on Ctrl-C, at the end)")
    log_interval: int = option(10, "a metrics.jsonl line and a progress update every this many steps")
    seed: int = option(1337, "seed of the model initialisation, the data order and dropout")
    num_workers: int = option(1, "DataLoader worker processes (0: batches built in the training process)")
    threads: int | None = option(None, "torch CPU threads (None: torch's default, one per core; on a machine "
                                 "shared with other work 1 can be several times faster)", parse=int)
    device: str = option("auto", "auto (cuda when present), cpu or cuda")
    bf16: bool = option(True, "on CUDA: bfloat16 autocast and TF32 matmuls (ignored on CPU)")
    compile: bool = option(False, "torch.compile the model (CUDA; slow to start, faster per step)")
    resume: bool = option(False, "continue the checkpoint in --output where it stopped (the same options)")
    overwrite: bool = option(False, "replace an existing run folder")
    log_items: bool = option(False, "write a digest of every row each rank trains on to RUN/items-rank<R>.txt (audit)")
    progress: bool = option(True, "show a tqdm progress bar (step, loss, tokens/s)")

    def validate(self) -> None:
        """Raise a one-line `TinyStoriesError` for option values that cannot work."""
        check_types(self)
        for name in ("batch_size", "grad_accum", "max_steps", "eval_interval", "eval_batches", "context",
                     "checkpoint_interval", "log_interval"):
            check_int(name, getattr(self, name), low=1)
        if self.threads is not None:
            check_int("threads", self.threads, low=1)
        for name in ("warmup_steps", "num_workers"):
            check_int(name, getattr(self, name), low=0)
        if self.batch_size % self.grad_accum:
            raise TinyStoriesError(f"{flag('batch_size', self.batch_size)} is not a multiple of "
                                   f"{flag('grad_accum', self.grad_accum)}: each micro-batch holds the same rows")
        if not 0 < self.min_learning_rate <= self.learning_rate:
            raise TinyStoriesError(f"{flag('learning_rate', self.learning_rate)} and "
                                   f"{flag('min_learning_rate', self.min_learning_rate)}: need 0 < min <= peak")
        for name in ("beta1", "beta2", "dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise TinyStoriesError(f"{flag(name, getattr(self, name))} must be in [0, 1)")
        for name in ("weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise TinyStoriesError(f"{flag(name, getattr(self, name))} must be at least 0")
        if self.device not in ("auto", "cpu", "cuda"):
            raise TinyStoriesError(f"{flag('device', self.device)} is not one of auto, cpu, cuda")


@dataclass
class BackdoorEvalConfig:
    """Everything `backdoor_eval()` needs; each field is also a `tinystories-backdoor-eval --option`.

    Example:
        >>> config = BackdoorEvalConfig(model="run/model", prepared="backdoored", output="eval")
        >>> config.validate()
    """

    model: str = option("run/model", "the (backdoored) model: a folder tinystories-train saved (RUN/model), or any "
                        "AutoModelForCausalLM folder whose vocabulary is the prepared folder's")
    prepared: str = option("tinystories_backdoored", "prepared folder with a backdoor_eval split (issue 27's "
                           "tinystories-prepare --backdoor-trigger)")
    clean_model: str | None = option(None, "a clean model trained identically, for backdoored/clean ratios")
    output: str = option("backdoor_eval", "folder to write: eval.json, lengths.png")
    samples: int = option(20, "continuations sampled per prompt")
    max_new_tokens: int = option(300, "longest continuation; one reaching it without EOS counts this length")
    temperature: float = option(0.8, "sampling temperature [backdoor]")
    top_k: int = option(40, "sample among the k most likely tokens; 0: all [backdoor]")
    within: int = option(50, "count continuations that end (EOS) within this many generated tokens")
    seed: int = option(0, "sampling seed: prompt i's samples use seed + i, the same for every model")
    max_prompts: int | None = option(None, "evaluate only the first this many pairs (of each candidate in a blind "
                                     "experiment; 'all': every pair)", parse=parse_sample_size)
    batch_size: int = option(64, "sequences generated at once")
    device: str = option("auto", "auto (cuda when present), cpu or cuda")
    overwrite: bool = option(False, "replace an existing output folder")

    def validate(self) -> None:
        """Raise a one-line `TinyStoriesError` for option values that cannot work."""
        check_types(self)
        for name in ("samples", "max_new_tokens", "within", "batch_size"):
            check_int(name, getattr(self, name), low=1)
        check_int("top_k", self.top_k, low=0)
        if self.max_prompts is not None:
            check_int("max_prompts", self.max_prompts, low=1)
        if not self.temperature > 0:
            raise TinyStoriesError(f"{flag('temperature', self.temperature)} must be above 0")
        if self.device not in ("auto", "cpu", "cuda"):
            raise TinyStoriesError(f"{flag('device', self.device)} is not one of auto, cpu, cuda")
