"""Benchmarks that print figures (never pass/fail): run them on the machine whose numbers you quote.

    python scripts/benchmark.py                                   # prepare vs ceilings, TinyStories' size
    python scripts/benchmark.py --stories 200000 --scale 4        # smaller, plus peak memory at 4x the corpus
    python scripts/benchmark.py --memory-cap 2 --repeat 2         # plus prepare in a 2 GiB cgroup; best of 2
    python scripts/benchmark.py --loaders --data tinystories_prepared   # the training adapters

Prepare: every pipeline runs on the same corpus (made by ../shared/tools/make_corpus.py: real sentences in
real story shapes, Hub parquet layout) in its own subprocess, while a sampler reads the memory of that
process and all its children every 0.5 s. tokens/s = GPT-2 tokens of all stories in the corpus / wall time.

--loaders: random-access tokens/s and RSS of the training adapters (TinyStoriesDatasetPacked,
TinyStoriesDataset) against a reference that loads every story into Python lists in memory, as the old
pickle-based loader did, then the packed dataset through minGPT's DataLoader call with 2 workers.
"""
import argparse
import dataclasses
import gc
import json
import multiprocessing
import os
import platform
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from tinystories_hf.config import add_config_arguments, config_from_args, option
from tinystories_hf.errors import cli_errors
from tinystories_hf.store import load_prepared
from tinystories_hf.tokenize import ENCODE_BATCH_SIZE

REPO = Path(__file__).resolve().parents[1]
MAKE_CORPUS = REPO.parent / "shared" / "tools" / "make_corpus.py"
SHARD_ROWS = 100_000


@dataclass
class PrepareBenchmarkConfig:
    """Options of the prepare benchmark (the default mode)."""

    stories: int = option(2_119_719, "train stories in the corpus (validation in TinyStories' ratio: 21,990 "
                          "at the default, the real size)")
    num_proc: int = option(2, "processes for the ceilings and for prepare")
    old_stories: int = option(50_000, "stories the (slow) old pipeline runs on; its tokens/s is compared")
    scale: int = option(1, "also run prepare on a corpus this many times larger (peak memory flatness)")
    repeat: int = option(1, "runs of every row; each row shows its fastest (wall times vary on shared machines)")
    memory_cap: float = option(0.0, "also run prepare in a memory cgroup capped at this many GiB (page cache "
                               "included; needs write access to /sys/fs/cgroup, e.g. root); 0: skip")
    workdir: str = option(os.path.join(tempfile.gettempdir(), "tinystories-hf-bench"),
                          "corpus, cache and output folder (corpora are reused between runs)")


# -- corpus -------------------------------------------------------------------------------------------------
def validation_size(train: int) -> int:
    """Validation stories beside `train` in TinyStories' own ratio (21,990 for 2,119,719)."""
    return max(1, round(train * 21_990 / 2_119_719))


def make_corpus(workdir: Path, stories: int) -> Path:
    out = workdir / f"corpus-{stories}-{SHARD_ROWS}"
    if not (out / "data").exists():
        # Parquet files of SHARD_ROWS rows at every scale: datasets converts parquet one row group at a time
        # (a 530K-row group holds ~425 MB of text), so equal groups keep the 1x/4x memory comparison fair.
        subprocess.run([sys.executable, str(MAKE_CORPUS), str(out), "--train", str(stories), "--validation",
                        str(validation_size(stories)), "--layout", "hub", "--seed", "0", "--shard-rows",
                        str(SHARD_ROWS)], check=True, stdout=subprocess.DEVNULL)
    return out


def row_group_shares(corpus: Path, parts: int) -> list:
    """The corpus's parquet row groups dealt into `parts` shares of about equal story counts."""
    import pyarrow.parquet as pq

    shares, rows = [[] for _ in range(parts)], [0] * parts
    for path in sorted((corpus / "data").glob("*.parquet")):
        meta = pq.ParquetFile(path).metadata
        for group in range(meta.num_row_groups):
            k = rows.index(min(rows))
            shares[k].append((str(path), group))
            rows[k] += meta.row_group(group).num_rows
    return shares


# -- measured pipelines (each runs in its own subprocess: `benchmark.py --measure NAME ...`) ---------------
def _encode_share(backend: str, share: list, ready, results) -> None:
    """One ceiling worker: read its row groups into its own memory, build the encoder, wait for the
    others, then time encoding alone: the encoder call prepare makes, on batches of the same size."""
    import pyarrow.parquet as pq

    from tinystories_hf.base_tokenizer import load_base_tokenizer, make_encoder

    texts = [text for path, group in share
             for text in pq.ParquetFile(path).read_row_group(group, columns=["text"]).column("text").to_pylist()]
    encoder = make_encoder(load_base_tokenizer(), backend)
    encoder.encode_flat(["warm up"], np.uint16)
    ready.wait()
    start = time.monotonic()
    size = ENCODE_BATCH_SIZE
    tokens = sum(len(encoder.encode_flat(texts[i:i + size], np.uint16)[1]) for i in range(0, len(texts), size))
    results.put((start, time.monotonic(), tokens, len(texts)))


def measure_ceiling(args, backend: str) -> dict:
    """Encoding only, in `num_proc` processes each holding its share of the stories in memory (read before
    the clock starts): wall time from the first worker's start to the last one's end."""
    context = multiprocessing.get_context("fork")
    ready, results = context.Barrier(args.num_proc), context.Queue()
    workers = [context.Process(target=_encode_share, args=(backend, share, ready, results), daemon=True)
               for share in row_group_shares(args.corpus, args.num_proc)]
    for worker in workers:
        worker.start()
    done = []
    while len(done) < len(workers):
        try:
            done.append(results.get(timeout=1))
        except queue.Empty:
            if any(worker.exitcode for worker in workers):  # a crashed worker would leave the others waiting
                raise SystemExit(f"a {backend} ceiling worker failed (exit codes {[w.exitcode for w in workers]})")
    for worker in workers:
        worker.join()
    return {"seconds": max(d[1] for d in done) - min(d[0] for d in done), "tokens": sum(d[2] for d in done),
            "stories": sum(d[3] for d in done)}


def measure_tiktoken(args) -> dict:
    return measure_ceiling(args, "tiktoken")


def measure_hf(args) -> dict:
    return measure_ceiling(args, "hf")


def measure_old(args) -> dict:
    """The replaced pipeline, re-implemented: one process and a Python loop over the rows of the datasets
    table; it tokenizes a seeded 100K-story sample story by story into a Counter, then tokenizes every story
    again, remaps each token through a dict and writes chunks.

    Chunks are written as raw uint16 arrays instead of the old pickles (no pickle anywhere here), which
    only makes this reference faster than the original.
    """
    import random
    from array import array

    import datasets
    from transformers import GPT2Tokenizer

    from tinystories_hf.base_tokenizer import gpt2_bpe_files

    files = gpt2_bpe_files()  # the GPT-Neo tokenizer through transformers, as the old code used it
    tokenizer = GPT2Tokenizer(vocab=str(files["encoder.json"]), merges=str(files["vocab.bpe"]))
    out = Path(tempfile.mkdtemp(prefix="old-pipeline-"))
    start = time.perf_counter()
    splits = datasets.load_dataset(str(args.corpus), cache_dir=str(out / "cache"))
    if args.limit:
        splits = {name: ds.select(range(min(args.limit, ds.num_rows))) for name, ds in splits.items()}
    train = splits["train"]
    counter = Counter()
    for i in sorted(random.Random(0).sample(range(train.num_rows), min(100_000, train.num_rows))):
        counter.update(tokenizer.encode(train[i]["text"]))
    vocab = {token: i for i, (token, _) in enumerate(counter.most_common(10_000))}
    unk, tokens, stories = 10_000, 0, 0
    for name, ds in splits.items():
        chunk = []
        for n, row in enumerate(ds):
            ids = tokenizer.encode(row["text"])
            tokens, stories = tokens + len(ids), stories + 1
            chunk.append([vocab.get(token, unk) for token in ids[:512]])
            if len(chunk) == 10_000 or n == ds.num_rows - 1:
                with open(out / f"{name}-{n // 10_000:05d}.bin", "wb") as f:
                    for story in chunk:
                        array("H", story).tofile(f)
                chunk = []
    seconds = time.perf_counter() - start
    shutil.rmtree(out)
    return {"seconds": seconds, "tokens": tokens, "stories": stories}


def measure_prepare(args) -> dict:
    """`tinystories-prepare` end to end (both splits, vocabulary, remap, filter, save) as a user runs it."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tinystories_hf.pipeline", "--source", str(args.corpus), "--output",
                    str(args.output), "--num-proc", str(args.num_proc), "--cache-dir", str(args.cache_dir),
                    "--overwrite"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    info = json.loads((Path(args.output) / "prepare_info.json").read_text())
    stored = sum(c["tokens"] for c in info["splits"].values())
    data_bytes = sum(p.stat().st_size for split in info["splits"] for p in (Path(args.output) / split).glob("*.arrow"))
    return {"seconds": seconds, "tokens": sum(c["base_tokens"] for c in info["splits"].values()),
            "stories": sum(c["stories"] for c in info["splits"].values()), "stored_tokens": stored,
            "bytes_per_token": data_bytes / stored, "output_bytes": data_bytes, "stages": info["stage_seconds"]}


MEASURES = {"tiktoken": measure_tiktoken, "hf": measure_hf, "old": measure_old, "prepare": measure_prepare}


# -- runner --------------------------------------------------------------------------------------------------
def _tree_memory(proc: psutil.Process) -> tuple:
    """(RSS, PSS, anonymous PSS) in bytes, summed over a process and its children.

    RSS counts pages shared by forked workers once per process (an overestimate) and, like PSS, includes
    the pages of memory-mapped Arrow files that were read (page cache the kernel can drop at any time);
    anonymous PSS is the memory the processes themselves allocated."""
    totals = [0, 0, 0]
    try:
        processes = [proc] + proc.children(recursive=True)
    except psutil.Error:  # a worker ended while being listed: skip this sample
        return tuple(totals)
    for p in processes:
        try:
            with open(f"/proc/{p.pid}/smaps_rollup") as f:
                fields = dict(line.split(":", 1) for line in f if line.rstrip().endswith(" kB"))
            for i, key in enumerate(("Rss", "Pss", "Pss_Anon")):
                totals[i] += int(fields[key].split()[0]) * 1024
        except (psutil.Error, OSError, KeyError, ValueError):
            pass
    return tuple(totals)


class MemoryCgroup:
    """A child memory cgroup of this process's own, capped at `limit` bytes (cgroup v2 `memory.max` or v1
    `memory.limit_in_bytes`). The cap counts page cache too, which the kernel reclaims when the cap is
    reached; with no swap, anonymous memory cannot go anywhere, so a run that completes under the cap
    never needed more than the cap. `close()` returns the cgroup's own high-water mark (page cache included)."""

    def __init__(self, limit: int):
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        v1 = [line.split(":", 2)[2] for line in lines if line.split(":")[1] == "memory"]
        if v1:
            parent, files = Path("/sys/fs/cgroup/memory" + v1[0]), ("memory.limit_in_bytes", "memory.max_usage_in_bytes")
        else:
            parent, files = Path("/sys/fs/cgroup" + lines[0].split(":", 2)[2]), ("memory.max", "memory.peak")
        self.path = parent / f"tinystories-bench-{os.getpid()}"
        try:
            self.path.mkdir()
            (self.path / files[0]).write_text(str(limit))
        except OSError as e:
            raise SystemExit(f"error: --memory-cap needs a writable memory cgroup under {parent} ({e}); "
                             "run as root or drop --memory-cap")
        self.peak_file = self.path / files[1]

    def wrap(self, cmd: list) -> list:
        """`cmd` run by a shell that first moves itself into the cgroup, then execs: nothing escapes the cap."""
        return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(self.path), *cmd]

    def close(self) -> int:
        peak = int(self.peak_file.read_text())
        self.path.rmdir()
        return peak


def run_measure(name: str, memory_cap: float = 0.0, **options) -> dict:
    cmd = [sys.executable, __file__, "--measure", name]
    for key, value in options.items():
        if value is not None:
            cmd += [f"--{key.replace('_', '-')}", str(value)]
    cgroup = MemoryCgroup(int(memory_cap * 2**30)) if memory_cap else None
    proc = subprocess.Popen(cgroup.wrap(cmd) if cgroup else cmd, stdout=subprocess.PIPE, text=True)
    peak = [0, 0, 0]

    def sample():
        # smaps_rollup walks the page tables: reading it costs CPU, so sample every 0.5 s (runs take minutes).
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            peak[:] = map(max, peak, _tree_memory(ps))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    sampler.join()
    cgroup_peak = cgroup.close() if cgroup else None
    if proc.returncode:
        killed = " (killed: the memory cap was too small)" if cgroup and proc.returncode == -9 else ""
        raise SystemExit(f"benchmark step {name!r} failed (exit {proc.returncode}){killed}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(peak_rss=peak[0], peak_pss=peak[1], peak_anon=peak[2], cgroup_peak=cgroup_peak,
                  tokens_per_s=result["tokens"] / result["seconds"])
    return result


def fastest(repeats: list) -> dict:
    """The fastest of a row's repeats, with the highest memory peaks seen in any of them."""
    best = dict(min(repeats, key=lambda r: r["seconds"]))
    for key in ("peak_rss", "peak_pss", "peak_anon"):
        best[key] = max(r[key] for r in repeats)
    best["all_seconds"] = [r["seconds"] for r in repeats]
    return best


def _gb(n: int) -> str:
    return f"{n / 2**30:.2f} GB"


def machine() -> str:
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                   platform.processor())
    return f"{os.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, " \
           f"Python {platform.python_version()}"


def benchmark_prepare(args) -> None:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    corpus = make_corpus(workdir, args.stories)
    cache, output = workdir / "cache", workdir / "prepared"
    print(f"corpus: {corpus} ({args.stories:,} train + {validation_size(args.stories):,} validation stories); "
          f"{args.num_proc} processes; {machine()}", flush=True)
    prepare = {"corpus": corpus, "num_proc": args.num_proc, "cache_dir": cache, "output": output}
    # row name -> every repeat of it; the machine is a shared VM, so rows keep their fastest repeat
    runs = {name: [] for name in ("tiktoken ceiling", "HF tokenizer ceiling", "old serial pipeline",
                                  "tinystories-prepare", "tinystories-prepare, cached rerun")}
    for _ in range(args.repeat):
        runs["HF tokenizer ceiling"].append(run_measure("hf", corpus=corpus, num_proc=args.num_proc))
        runs["old serial pipeline"].append(run_measure("old", corpus=corpus, limit=args.old_stories))
        # The ceiling right before prepare: the pair's ratio is the least exposed to the VM's speed drifting.
        runs["tiktoken ceiling"].append(run_measure("tiktoken", corpus=corpus, num_proc=args.num_proc))
        shutil.rmtree(cache, ignore_errors=True)
        runs["tinystories-prepare"].append(run_measure("prepare", **prepare))
        runs["tinystories-prepare, cached rerun"].append(run_measure("prepare", **prepare))
    if args.scale > 1:
        big = make_corpus(workdir, args.stories * args.scale)
        for _ in range(args.repeat):
            shutil.rmtree(cache, ignore_errors=True)
            runs.setdefault(f"tinystories-prepare, {args.scale}x corpus", []).append(
                run_measure("prepare", **{**prepare, "corpus": big}))
    if args.memory_cap:
        for _ in range(args.repeat):
            shutil.rmtree(cache, ignore_errors=True)
            runs.setdefault(f"tinystories-prepare, {args.memory_cap:g} GiB memory cap", []).append(
                run_measure("prepare", memory_cap=args.memory_cap, **prepare))
    rows = {name: fastest(repeats) for name, repeats in runs.items()}
    prepared = rows["tinystories-prepare"]
    shutil.rmtree(cache, ignore_errors=True)

    print("\n| pipeline | stories | wall s | tokens/s | peak RSS | peak PSS | peak anonymous PSS |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['stories']:,} | {r['seconds']:.1f} | {r['tokens_per_s'] / 1e6:.2f}M | "
              f"{_gb(r['peak_rss'])} | {_gb(r['peak_pss'])} | {_gb(r['peak_anon'])} |")
    print("(memory summed over the process and its workers; RSS and PSS include memory-mapped Arrow pages that "
          "were read, anonymous PSS is allocated memory only)")
    if args.repeat > 1:
        print("wall s of every repeat: " + "; ".join(
            f"{name} {', '.join(f'{s:.1f}' for s in r['all_seconds'])}" for name, r in rows.items()))
    ceiling, hf, old = rows["tiktoken ceiling"], rows["HF tokenizer ceiling"], rows["old serial pipeline"]
    cached = rows["tinystories-prepare, cached rerun"]
    print(f"\nprepare / tiktoken ceiling: {prepared['tokens_per_s'] / ceiling['tokens_per_s']:.2f}x (goal >= 0.85)")
    if args.repeat > 1:
        pairs = [c["seconds"] / p["seconds"] for c, p in zip(runs["tiktoken ceiling"], runs["tinystories-prepare"])]
        print("prepare / tiktoken ceiling, each repeat's back-to-back pair: " +
              ", ".join(f"{ratio:.2f}x" for ratio in pairs))
    print(f"prepare / HF tokenizer ceiling: {prepared['tokens_per_s'] / hf['tokens_per_s']:.2f}x")
    print(f"prepare / old pipeline: {prepared['tokens_per_s'] / old['tokens_per_s']:.1f}x (goal >= 13)")
    print(f"cached rerun / first run wall time: {cached['seconds'] / prepared['seconds']:.1%} (goal < 10%)")
    stages = prepared["stages"]
    print("prepare stages: " + ", ".join(f"{stage} {s:.1f} s" for stage, s in stages.items()) +
          f"; interpreter start, imports and save {prepared['seconds'] - sum(stages.values()):.1f} s")
    print(f"output: {prepared['output_bytes'] / 2**20:.1f} MiB for {prepared['stored_tokens']:,} stored tokens = "
          f"{prepared['bytes_per_token']:.3f} bytes/token (goal <= 2.2)")
    if args.scale > 1:
        scaled = rows[f"tinystories-prepare, {args.scale}x corpus"]
        print(f"peak memory at {args.scale}x / 1x: RSS {scaled['peak_rss'] / prepared['peak_rss']:.2f}, "
              f"PSS {scaled['peak_pss'] / prepared['peak_pss']:.2f}, anonymous PSS "
              f"{scaled['peak_anon'] / prepared['peak_anon']:.2f} (goal <= 1.25)")
    if args.memory_cap:
        capped = rows[f"tinystories-prepare, {args.memory_cap:g} GiB memory cap"]
        print(f"under a {args.memory_cap:g} GiB memory cap (cgroup, page cache included; swap "
              f"{psutil.swap_memory().total / 2**30:.1f} GiB): completed in "
              f"{capped['seconds']:.1f} s ({capped['seconds'] / prepared['seconds']:.2f}x the uncapped run), "
              f"cgroup peak {_gb(capped['cgroup_peak'])}")



# -- training adapters (--loaders) -------------------------------------------------------------------
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
        from tinystories_hf.adapters import open_split

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
    from tinystories_hf.adapters import TinyStoriesDataset, TinyStoriesDatasetPacked

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


# -- entry point -----------------------------------------------------------------------------------------------
@cli_errors
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--loaders", action="store_true", help="benchmark the training adapters instead")
    add_config_arguments(parser, PrepareBenchmarkConfig)
    add_config_arguments(parser, LoaderBenchmarkConfig)
    parser.add_argument("--measure", choices=sorted(MEASURES), help=argparse.SUPPRESS)
    for hidden in ("corpus", "output", "cache-dir", "limit"):
        parser.add_argument(f"--{hidden}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:  # inside a measured subprocess: run one pipeline, print its figures as JSON
        args.corpus = Path(args.corpus)
        args.limit = int(args.limit) if args.limit else None
        print(json.dumps(MEASURES[args.measure](args)))
    elif args.loaders:
        benchmark_loaders(args)
    else:
        benchmark_prepare(config_from_args(args, PrepareBenchmarkConfig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
