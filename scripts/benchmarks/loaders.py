"""`benchmark.py --loaders`: random-access tokens/s and RSS of the training adapters (TinyStoriesDatasetPacked,
TinyStoriesDataset) against a reference that loads every story into Python lists in memory, as the old
pickle-based loader did, then the packed dataset through minGPT's DataLoader call with 2 workers."""
import dataclasses
import gc
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import psutil

from tinystories_hf.config import config_from_args, option
from tinystories_hf.store.load import load_prepared


@dataclass
class LoaderBenchmarkConfig:
    """Options of `benchmark.py --loaders`."""

    data: str = option("tinystories_prepared", "prepared folder to read")
    split: str = option("train", "split to read")
    block_size: int = option(512, "tokens per item")
    items: int = option(20_000, "random items read per loader")
    loader_batches: int = option(200, "batches read through minGPT's DataLoader call with 2 workers")
    loader_batch_size: int = option(64, "DataLoader batch size (minGPT's default is 64)")
    seed: int = option(0, "seed of the random item indices")


class ListPackedReference:
    """The old way, for comparison: every story read into one Python list (the stream), windows sliced from it.
    (A map-style dataset: `__len__` and `__getitem__` are all a DataLoader needs.)"""

    def __init__(self, source, *, split: str, block_size: int):
        from tinystories_hf.training.adapters import open_split

        dataset, tokenizer = open_split(source, split=split)
        self.block_size, self.stream = block_size, []
        for batch in dataset.iter(batch_size=10_000):
            for ids in batch["input_ids"]:
                self.stream.extend(ids)
                self.stream.append(tokenizer.eos_id)

    def __len__(self):
        return (len(self.stream) - 1) // self.block_size

    def __getitem__(self, i):
        import torch

        window = torch.tensor(self.stream[i * self.block_size: (i + 1) * self.block_size + 1])
        return window[:-1], window[1:]


def _loader(name: str):
    """The loader class (imported here: torch takes seconds to import and the prepare benchmark needs none)."""
    from tinystories_hf.training.adapters import TinyStoriesDataset, TinyStoriesDatasetPacked

    return {"TinyStoriesDatasetPacked": TinyStoriesDatasetPacked, "TinyStoriesDataset": TinyStoriesDataset,
            "lists in memory (old)": ListPackedReference}[name]


LOADERS = ("TinyStoriesDatasetPacked", "TinyStoriesDataset", "lists in memory (old)")


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def _random_access(name: str, options: dict) -> None:
    """One loader in a fresh process: build it, read random items, print the figures."""
    config = LoaderBenchmarkConfig(**options)
    loader = _loader(name)  # imports (torch) and tokenizer caches first, so the RSS growth is the loader's own
    load_prepared(config.data)
    gc.collect()
    before, started = _rss_mb(), time.perf_counter()
    dataset = loader(config.data, split=config.split, block_size=config.block_size)
    built, after_build = time.perf_counter() - started, _rss_mb()
    indices = np.random.default_rng(config.seed).integers(0, len(dataset), config.items).tolist()
    started = time.perf_counter()
    for i in indices:
        dataset[i]
    elapsed = time.perf_counter() - started
    print(f"{name:<26} {len(dataset):>9,} {built:>8.2f} {after_build - before:>12.1f} {_rss_mb() - before:>12.1f} "
          f"{config.items * config.block_size / elapsed / 1e6:>10.2f}", flush=True)


def benchmark_loaders(args) -> None:
    """Print tokens/s of random access and RSS growth for the adapters and the list-in-memory reference, each
    measured in a fresh process, then minGPT's DataLoader call over the packed dataset with 2 forked workers."""
    config = config_from_args(args, LoaderBenchmarkConfig)
    print(f"{config.data} [{config.split}], block_size {config.block_size}, {config.items:,} random items each, "
          f"{psutil.cpu_count()} CPUs, load average {psutil.getloadavg()[0]:.2f}")
    print(f"{'loader':<26} {'items':>9} {'build s':>8} {'RSS+ build':>12} {'RSS+ access':>12} {'M tok/s':>10}")
    for name in LOADERS:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            pool.submit(_random_access, name, dataclasses.asdict(config)).result()
    print("RSS+ access includes the pages of the memory-mapped Arrow files read (page cache, shared)")

    import torch

    packed = _loader("TinyStoriesDatasetPacked")(config.data, split=config.split, block_size=config.block_size)
    loader = torch.utils.data.DataLoader(
        packed, sampler=torch.utils.data.RandomSampler(packed, replacement=True, num_samples=int(1e10)),
        shuffle=False, pin_memory=False, batch_size=config.loader_batch_size, num_workers=2)
    others = {p.pid for p in psutil.Process().children()}
    batches = iter(loader)
    next(batches)  # start the workers before timing
    started = time.perf_counter()
    for _ in range(config.loader_batches):
        next(batches)
    elapsed = time.perf_counter() - started
    # USS: memory only that worker holds (copy-on-write copies, its own allocations), not the pages it shares.
    workers = [p.memory_full_info().uss / 2**20 for p in psutil.Process().children() if p.pid not in others]
    tokens = config.loader_batches * config.loader_batch_size * config.block_size
    print(f"DataLoader, minGPT call, 2 workers, batch {config.loader_batch_size}: {tokens / elapsed / 1e6:.2f} M tok/s; "
          f"worker USS {', '.join(f'{w:.0f}' for w in workers)} MB")
    del batches
