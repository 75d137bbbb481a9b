"""`train()` / `tinystories-train`: a GPT-Neo causal LM trained on a prepared folder's packed train split.

A plain PyTorch loop, not the Hugging Face `Trainer`: on this project's CPU the loop ran the 1M model faster
(README "Training and measuring a backdoor": `scripts/benchmark_train.py --hf-trainer`), and it keeps the
resume exact in few lines: the sampler's position, the RNG state taken at the start of the step, AdamW's
moments and the step count (the learning rate is a function of the step) are all a checkpoint holds.

    RUN/metrics.jsonl   {"step", "loss", "lr", "tokens", "tokens_per_s", "data_wait_s", "elapsed_s"} every
                        --log-interval steps (rate, waiting for batches and time since this process began), {"step", "val_loss", "val_perplexity"} every --eval-interval steps
    RUN/loss.png        the train and validation loss curves
    RUN/checkpoint/     see checkpoint.py; every --checkpoint-interval steps, on Ctrl-C and at the end
    RUN/model/, best/   the final model and the one of lowest validation loss, with the folder's tokenizer:
                        AutoModelForCausalLM.from_pretrained + AutoTokenizer(trust_remote_code=True)

Under `torchrun` every rank trains on its disjoint share of each global batch (`TinyStoriesSampler`), the
gradients averaged by DistributedDataParallel (gloo on CPU, NCCL on CUDA); rank 0 writes. The module is over
350 lines because the loop, its checkpointing and its outputs read best in one place.
"""
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path

from ..errors import TinyStoriesError, flag
from ..store.load import load_prepared
from ..supervision import api_errors, current_run, signals_deferred, writes
from ..utils.atomic import atomic_folder
from ..utils.extras import require
from ..utils.json_files import parse, read_text
from .checkpoint import (
    CHECKPOINT_DIR,
    load_optimizer,
    load_weights,
    read_checkpoint,
    rng_tensors,
    save_checkpoint,
    set_rng,
)
from .options import PAPER_MODELS, TrainConfig

torch = require("torch", extra="torch", needed_by=__name__)
F = torch.nn.functional

# (hidden size, layers) of the paper's models (Eldan & Li 2023; TinyStories-33M is 4 layers of 768)
PAPER_SIZES = dict(zip(PAPER_MODELS, [(64, 8), (128, 8), (256, 8), (512, 8), (768, 4)]))
# Options whose change makes a resumed run another run (the rest only say how it is logged or saved).
# The data is checked by the sampler's fingerprint (the folder may move).
TRAJECTORY = ("model", "learning_rate", "min_learning_rate", "warmup_steps", "weight_decay", "beta1",
              "beta2", "grad_clip", "dropout", "context", "batch_size", "grad_accum", "max_steps", "seed")
DROPOUTS = ("embed_dropout", "attention_dropout", "resid_dropout", "attn_pdrop", "resid_pdrop", "embd_pdrop",
            "hidden_dropout", "hidden_dropout_prob", "attention_probs_dropout_prob", "dropout")


def learning_rate(step: int, config: TrainConfig) -> float:
    """The rate of optimizer step `step` (0-based): linear warmup over `warmup_steps` to the peak, then cosine
    decay reaching `min_learning_rate` on the last step (nanoGPT's schedule).

    Example:
        >>> c = TrainConfig(warmup_steps=10, max_steps=110)
        >>> learning_rate(0, c), learning_rate(10, c), learning_rate(109, c)
        (5e-05, 0.0005, 5e-05)
    """
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    span = max(1, config.max_steps - 1 - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.min_learning_rate + 0.5 * (1 + math.cos(math.pi * progress)) * (
        config.learning_rate - config.min_learning_rate)


def model_config(config: TrainConfig, tokenizer):
    """The transformers config of `--model` with the folder's vocabulary, EOS and `--dropout`.

    Raises `TinyStoriesError` for a config.json that cannot be read, whose vocabulary is smaller than the
    folder's ids or whose positions are fewer than `--context`."""
    import transformers

    from .models import gpt_neo_config

    if config.model in PAPER_SIZES:
        hidden, layers = PAPER_SIZES[config.model]
        model = gpt_neo_config(hidden, tokenizer=tokenizer, num_layers=layers, context=config.context)
    else:
        path = Path(config.model)
        path = path / "config.json" if path.is_dir() else path
        fix = f"pass one of {', '.join(PAPER_MODELS)} or a transformers config.json to {flag('model')}"
        values = parse(read_text(path, fix=fix), path, fix)
        if not isinstance(values, dict) or not isinstance(values.get("model_type"), str):
            raise TinyStoriesError(f"{path}: no 'model_type'; {fix}")
        # the folder's EOS, never the config's (GPT-Neo's default 50256 is no id of a reduced vocabulary)
        values = dict(values, eos_token_id=tokenizer.separator_id, pad_token_id=tokenizer.separator_id,
                      bos_token_id=tokenizer.bos_token_id)
        try:
            model = transformers.AutoConfig.for_model(**values)
        except (ValueError, KeyError, TypeError) as e:
            raise TinyStoriesError(f"{path}: not a model config transformers knows ({e}); {fix}") from None
        vocab = getattr(model, "vocab_size", None)
        if not isinstance(vocab, int) or vocab < tokenizer.vocab_size:
            raise TinyStoriesError(f"{path}: vocab_size {vocab} is smaller than the {tokenizer.vocab_size} ids of "
                                   f"the prepared folder; set it to {tokenizer.vocab_size} (or more)")
        positions = getattr(model, "max_position_embeddings", None)
        if isinstance(positions, int) and positions < config.context:
            raise TinyStoriesError(f"{path}: max_position_embeddings {positions} is below "
                                   f"{flag('context', config.context)}; lower the context or raise it")
    for name in DROPOUTS:
        if isinstance(getattr(model, name, None), float):
            setattr(model, name, config.dropout)
    return model


def _check_resume(state: dict, config: TrainConfig, run: Path) -> None:
    options = dataclasses.asdict(config)
    for name in TRAJECTORY:
        if state["options"].get(name) != options[name]:
            raise TinyStoriesError(
                f"{run / 'checkpoint'} was saved by another run ({flag(name, state['options'].get(name))}, this one "
                f"has {flag(name, options[name])}): resume with that run's options, or start a new run "
                f"({flag('overwrite', True)} or another {flag('output')})")


def _prepare_output(run: Path, config: TrainConfig, rank: int, world: int) -> None:
    """Check the run folder (every rank, before any writes), then rank 0 empties or makes it."""
    if config.resume:
        return
    replace = run.exists() and any(run.iterdir())
    if replace:
        if not config.overwrite:
            raise TinyStoriesError(f"{run} exists; pass {flag('resume', True)} to continue its checkpoint or "
                                   f"{flag('overwrite', True)} to start again")
        if not (run / "run.json").is_file():
            raise TinyStoriesError(f"{run} is not a run folder (no run.json): {flag('overwrite', True)} replaces "
                                   f"only a folder tinystories-train wrote; choose another {flag('output')}")
    if world > 1:
        torch.distributed.barrier()
    if rank == 0:
        if replace:
            shutil.rmtree(run)
        run.mkdir(parents=True, exist_ok=True)
        (run / "run.json").write_text(json.dumps(dataclasses.asdict(config), indent=1) + "\n", encoding="utf-8")
    if world > 1:
        torch.distributed.barrier()


class Batches:
    """This rank's micro-batches, epoch after epoch; `state()` is the sampler's state after the batches taken."""

    def __init__(self, dataset, sampler, *, rows: int, workers: int, seed: int):
        self.sampler, self.taken = sampler, 0
        self.loader = torch.utils.data.DataLoader(
            dataset, sampler=sampler, batch_size=rows, drop_last=True, num_workers=workers,
            pin_memory=torch.cuda.is_available(), persistent_workers=False,
            # its own generator: creating an iterator must not draw from the global RNG dropout uses
            generator=torch.Generator().manual_seed(seed))
        self.iterator = None

    def __next__(self):
        while True:
            if self.iterator is None:
                self.iterator, self.taken = iter(self.loader), 0
            try:
                batch = next(self.iterator)
                self.taken += 1
                return batch
            except StopIteration:
                self.iterator = None
                self.sampler.set_epoch(self.sampler.epoch + 1)

    def state(self) -> dict:
        return self.sampler.state_dict(samples=self.taken * self.loader.batch_size)


def _distributed(config: TrainConfig):
    """`(rank, world_size, device)`, joining the torchrun group when WORLD_SIZE > 1."""
    cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    if config.device == "cuda" and not torch.cuda.is_available():
        raise TinyStoriesError(f"{flag('device', 'cuda')}: no CUDA device is available; use {flag('device', 'cpu')}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend="nccl" if cuda else "gloo")
        rank, local = torch.distributed.get_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    else:
        rank, local = 0, 0
    if cuda:
        torch.cuda.set_device(local)
    return rank, world, torch.device(f"cuda:{local}" if cuda else "cpu")


def _evaluate(model, batches, device, autocast) -> float:
    model.eval()
    total, count = torch.zeros((), device=device, dtype=torch.float64), 0
    with torch.no_grad(), autocast():
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            logits = model(input_ids=x).logits
            total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=-1).double()
            count += 1
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(total)
        total /= torch.distributed.get_world_size()
    model.train()
    return float(total) / count


def save_model(model, tokenizer, output: Path, *, context: int) -> None:
    """`model` (unwrapped from DDP / torch.compile) with the prepared folder's tokenizer, atomically."""
    model = getattr(model, "module", model)
    model = getattr(model, "_orig_mod", model)
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a bar per save would scroll the training bar away
    try:
        with atomic_folder(output, overwrite=True) as partial:
            model.save_pretrained(str(partial))
            tokenizer.save_pretrained(partial, model_max_length=context)
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def plot_losses(metrics: list, path: Path) -> None:
    """The train and validation loss curves of `metrics` (dicts of metrics.jsonl) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    train = [m for m in metrics if "loss" in m]
    val = [m for m in metrics if "val_loss" in m]
    axes.plot([m["step"] for m in train], [m["loss"] for m in train], label="train", lw=1)
    axes.plot([m["step"] for m in val], [m["val_loss"] for m in val], "o-", label="validation")
    axes.set(xlabel="optimizer step", ylabel="cross-entropy (nats/token)", title="tinystories-train")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _read_metrics(path: Path, upto: int) -> list:
    """The lines of metrics.jsonl up to step `upto` (a resumed run drops those logged after its checkpoint)."""
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [m for m in lines if isinstance(m, dict) and isinstance(m.get("step"), int) and m["step"] <= upto]


@api_errors
def train(config: TrainConfig) -> dict:
    """Train per `config` and save RUN/model/; returns `{steps, val_loss, val_perplexity, model, metrics,
    tokens_per_s, data_wait_s}` (metrics: the dicts of metrics.jsonl).

    Raises `TinyStoriesError` for a folder without train or validation split, a `--model` config whose vocabulary
    is smaller than the folder's ids, a run folder that exists (without `--resume`/`--overwrite`), and a
    `--resume` whose checkpoint another run (other options or data) saved.

    Example:
        >>> result = train(TrainConfig(data="tinystories_prepared", output="run", model="1M"))  # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM

    from .adapters import TinyStoriesDatasetPacked
    from .sampler import TinyStoriesSampler

    config.validate()
    run = Path(config.output)
    writes(run, f"choose another {flag('output')}")
    active = current_run()
    if active is not None:  # Ctrl-C says "interrupted; RUN/checkpoint was already written (complete)"
        active.target = run / CHECKPOINT_DIR
    dataset_dict, tokenizer = load_prepared(config.data)
    for split in ("train", "validation"):
        if split not in dataset_dict:
            raise TinyStoriesError(f"{config.data}: no {split!r} split (it has {', '.join(dataset_dict)}); training "
                                   "needs train and validation: prepare the folder again with tinystories-prepare "
                                   "(it carves validation out of train, --validation-fraction)")
    rank, world, device = _distributed(config)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    rows = config.batch_size // config.grad_accum
    if rows % world:
        raise TinyStoriesError(f"{flag('batch_size', config.batch_size)} / {flag('grad_accum', config.grad_accum)} "
                               f"= {rows} rows per micro-batch do not share out evenly over {world} ranks")
    rows //= world
    train_data = TinyStoriesDatasetPacked(dataset_dict, split="train", block_size=config.context, tokenizer=tokenizer)
    val_data = TinyStoriesDatasetPacked(dataset_dict, split="validation", block_size=config.context,
                                        tokenizer=tokenizer)
    model_settings = model_config(config, tokenizer)
    _prepare_output(run, config, rank, world)

    torch.manual_seed(config.seed)
    model = AutoModelForCausalLM.from_config(model_settings).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.learning_rate,
                                  betas=(config.beta1, config.beta2), fused=device.type == "cuda")
    sampler = TinyStoriesSampler(train_data, seed=config.seed, rank=rank, world_size=world)
    step, tokens, best = 0, 0, None
    torch.manual_seed(config.seed + rank)  # dropout: each rank its own masks
    if config.resume:
        state, tensors = read_checkpoint(run)
        _check_resume(state, config, run)
        load_weights(model, run)
        load_optimizer(optimizer, {k: v.to(device) if k.startswith("optimizer.") and v.dim() else v
                                   for k, v in tensors.items()}, state["param_groups"])
        sampler.load_state_dict(state["sampler"])
        set_rng(tensors)
        step, tokens, best = state["step"], state["tokens"], state["best_val_loss"]
    batches = Batches(train_data, sampler, rows=rows, workers=config.num_workers, seed=config.seed)
    val_rows = torch.utils.data.Subset(val_data, range(min(len(val_data), config.eval_batches * rows * world)))
    val_loader = torch.utils.data.DataLoader(
        val_rows, batch_size=rows, sampler=TinyStoriesSampler(val_rows, shuffle=False, rank=rank, world_size=world,
                                                              fingerprint="validation"))
    if device.type == "cuda" and config.bf16:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

        def autocast():
            return torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        autocast = contextlib.nullcontext
    raw_model = model
    if config.compile:
        model = torch.compile(model)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.index is not None
                                                          else None)
    metrics_path = run / "metrics.jsonl"
    metrics = _read_metrics(metrics_path, step) if rank == 0 else []
    if rank == 0:
        metrics_path.write_text("".join(json.dumps(m) + "\n" for m in metrics), encoding="utf-8")
    items_log = (run / f"items-rank{rank}.txt").open("a" if config.resume else "w") if config.log_items else None
    progress = None
    if rank == 0 and config.progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=config.max_steps, initial=step, desc="train", unit="step", dynamic_ncols=True)

    def log(entry: dict) -> None:
        if rank == 0:
            metrics.append(entry)
            with metrics_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")

    def checkpoint(rng: dict, sampler_state: dict) -> None:
        if rank == 0:
            save_checkpoint(run, model=raw_model, optimizer=optimizer, rng=rng, state={
                "step": step, "epoch": sampler_state["epoch"], "sampler": sampler_state, "tokens": tokens,
                "options": dataclasses.asdict(config), "model_config": model_settings.to_dict(),
                "best_val_loss": best})
            plot_losses(metrics, run / "loss.png")

    def evaluate() -> float:
        nonlocal best, val_loss
        val_loss = _evaluate(model, val_loader, device, autocast)
        log({"step": step, "val_loss": val_loss, "val_perplexity": math.exp(min(val_loss, 700))})
        if rank == 0 and (best is None or val_loss < best):
            best = val_loss
            save_model(raw_model, tokenizer, run / "best", context=config.context)
        return val_loss

    model.train()
    val_loss = None
    rng, sampler_state, wait, started, first = rng_tensors(), batches.state(), 0.0, time.perf_counter(), step
    try:
        while step < config.max_steps:
            rng, sampler_state = rng_tensors(), batches.state()  # what a checkpoint of this step boundary holds
            lr = learning_rate(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum = torch.zeros((), device=device)
            for micro in range(config.grad_accum):
                waited = time.perf_counter()
                x, y = next(batches)
                wait += time.perf_counter() - waited
                if items_log:  # each row's digest: what was trained on, whatever the sampler meant to give
                    items_log.write(" ".join(row_digest(row) for row in x) + "\n")
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                sync = micro == config.grad_accum - 1 or world == 1
                with (contextlib.nullcontext() if sync else model.no_sync()), autocast():
                    logits = model(input_ids=x).logits
                    loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=-1)
                (loss / config.grad_accum).backward()
                loss_sum += loss.detach() / config.grad_accum
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            with signals_deferred():  # a Ctrl-C never leaves half the parameters updated
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                tokens += config.batch_size * config.context
            if step % config.log_interval == 0 or step == config.max_steps:
                if world > 1:
                    torch.distributed.all_reduce(loss_sum)
                    loss_sum /= world
                rate = (step - first) * config.batch_size * config.context / (time.perf_counter() - started)
                log({"step": step, "loss": loss_sum.item(), "lr": lr, "tokens": tokens, "tokens_per_s": rate,
                     "data_wait_s": wait, "elapsed_s": time.perf_counter() - started})
                if progress:
                    progress.set_postfix(loss=f"{metrics[-1]['loss']:.4f}", tok_s=f"{rate:,.0f}", refresh=False)
            if progress:
                progress.update(1)
            if step % config.eval_interval == 0 or step == config.max_steps:
                evaluate()
            if step % config.checkpoint_interval == 0 or step == config.max_steps:
                checkpoint(rng_tensors(), batches.state())
    except KeyboardInterrupt:
        # The step cut short never happened: save the state at its start (RNG, data position) with the
        # parameters of the steps done, so --resume repeats it exactly.
        checkpoint(rng, sampler_state)
        raise
    finally:
        if progress:
            progress.close()
        if items_log:
            items_log.close()
    if val_loss is None:  # resumed at the last step
        evaluate()
    if rank == 0:
        save_model(raw_model, tokenizer, run / "model", context=config.context)
    elapsed = time.perf_counter() - started
    return {"steps": step, "val_loss": val_loss, "val_perplexity": math.exp(min(val_loss, 700)),
            "model": str(run / "model"), "metrics": metrics, "data_wait_s": wait, "rank": rank,
            "tokens_per_s": (step - first) * config.batch_size * config.context / max(elapsed, 1e-9)}


def row_digest(row) -> str:
    """A row's tokens as 16 hex digits (blake2b of its int64 bytes): `--log-items` writes these per micro-batch."""
    return hashlib.blake2b(row.numpy().astype("<i8").tobytes(), digest_size=8).hexdigest()

