"""`tinystories-prepare` against the encode-only ceilings: the rows, the paired runs, and the goals.

Every row runs on the same corpus in its own subprocess while the sampler reads the memory of that process
and all its children every 0.5 s. tokens/s = GPT-2 tokens of all stories in the corpus / wall time.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psutil

from tinystories_hf.config import option

from .ceilings import CEILINGS, measure_ceiling
from .corpus import make_corpus, validation_size
from .memory import fastest, gb, machine, run_measure

FAST, REFERENCE = "fastokens", "tiktoken"  # the fastest exact encoder (docs/encoders.md) and the old ceiling
GOALS = {"fast": 0.5, "tiktoken": 3.0, "bytes_per_token": 2.05, "cached": 0.10, "rss_gb": 2.0, "flat": 1.25,
         "backdoor": 0.15}
BACKDOORED = "tinystories-prepare --backdoor-trigger (first run)"
CLEAN_AFTER = "tinystories-prepare, right after the backdoored one"


@dataclass
class PrepareBenchmarkConfig:
    """Options of the prepare benchmark (the default mode)."""

    stories: int = option(2_119_719, "train stories in the corpus (validation in TinyStories' ratio: 21,990 "
                          "at the default, the real size)")
    num_proc: int = option(2, "processes for the ceilings and for prepare")
    hf_ceiling: bool = option(False, "also measure the HF tokenizers ceiling (minutes at full scale)")
    old_pipeline: bool = option(False, "also run the old serial pipeline on --old-stories stories")
    old_stories: int = option(50_000, "stories the (slow) old pipeline runs on; its tokens/s is compared")
    scale: int = option(1, "also run prepare on a corpus this many times larger (peak memory flatness)")
    repeat: int = option(1, "runs of every row; each row shows its fastest (wall times vary on shared machines)")
    memory_cap: float = option(0.0, "also run prepare in a memory cgroup capped at this many GiB (page cache "
                               "included; needs write access to /sys/fs/cgroup, e.g. root); 0: skip")
    backdoor_trigger: str | None = option(
        None, "also run a backdoored prepare (--backdoor-trigger NAME, truncate, rate 1) back to back with a "
        "clean one (clean first in odd repeats, backdoored first in even ones), both from an empty cache; goal: "
        "the median of the pairs' differences is at most 15% more wall time")
    workdir: str = option(os.path.join(tempfile.gettempdir(), "tinystories-hf-bench"),
                          "corpus, cache and output folder (corpora are reused between runs)")


# -- measured pipelines (each runs in its own subprocess: `benchmark.py --measure NAME ...`) ---------------
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

    from tinystories_hf.vocabulary.gpt2 import gpt2_bpe_files

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
    # as the console script starts it: an up-to-date output is answered before datasets is imported
    subprocess.run([sys.executable, "-c", "import sys, tinystories_hf_cli; sys.exit(tinystories_hf_cli.prepare())",
                    "--source", str(args.corpus), "--output",
                    str(args.output), "--num-proc", str(args.num_proc), "--cache-dir", str(args.cache_dir),
                    "--overwrite"] + (["--backdoor-trigger", args.backdoor_trigger] if args.backdoor_trigger else []),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    info = json.loads((Path(args.output) / "prepare_info.json").read_text())
    stored = sum(c["tokens"] for c in info["splits"].values())
    data_bytes = sum(p.stat().st_size for split in info["splits"] for p in (Path(args.output) / split).glob("*.arrow"))
    backdoor = info.get("backdoor")
    return {"seconds": seconds, "tokens": sum(c["base_tokens"] for c in info["splits"].values()),
            "stories": sum(c["stories"] for c in info["splits"].values()), "stored_tokens": stored,
            "rewritten": backdoor["splits"]["train"]["rewritten"] if backdoor else None,
            "bytes_per_token": data_bytes / stored, "output_bytes": data_bytes, "stages": info["stage_seconds"],
            "concurrent": info.get("concurrent_seconds", {}), "backend": info["backend"]}


MEASURES = {"prepare": measure_prepare, "old": measure_old,
            **{backend: (lambda args, backend=backend: measure_ceiling(args, backend)) for backend in CEILINGS}}


# -- the rows and the goals ------------------------------------------------------------------------------
def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def benchmark_prepare(args) -> None:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    corpus = make_corpus(workdir, args.stories)
    cache, output = workdir / "cache", workdir / "prepared"
    print(f"corpus: {corpus} ({args.stories:,} train + {validation_size(args.stories):,} validation stories); "
          f"{args.num_proc} processes; {machine()}; load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    prepare = {"corpus": corpus, "num_proc": args.num_proc, "cache_dir": cache, "output": output}
    fast_row, tiktoken_row = CEILINGS[FAST], CEILINGS[REFERENCE]
    first, cached = "tinystories-prepare", "tinystories-prepare, cached rerun"
    # row name -> every repeat of it; the machine is a shared VM, so rows keep their fastest repeat
    runs = {name: [] for name in (fast_row, tiktoken_row, first, cached)}
    for _ in range(args.repeat):
        if args.hf_ceiling:
            runs.setdefault(CEILINGS["hf"], []).append(run_measure("hf", corpus=corpus, num_proc=args.num_proc))
        if args.old_pipeline:
            runs.setdefault("old serial pipeline", []).append(run_measure("old", corpus=corpus,
                                                                           limit=args.old_stories))
        # The ceilings right before prepare: each pair's ratio is the least exposed to the VM's speed drifting.
        runs[tiktoken_row].append(run_measure(REFERENCE, corpus=corpus, num_proc=args.num_proc))
        runs[fast_row].append(run_measure(FAST, corpus=corpus, num_proc=args.num_proc))
        shutil.rmtree(cache, ignore_errors=True)
        runs[first].append(run_measure("prepare", **prepare))
        runs[cached].append(run_measure("prepare", **prepare))
        if args.backdoor_trigger:  # the same first run with one more map, back to back with a clean one
            shutil.rmtree(cache, ignore_errors=True)
            runs.setdefault(BACKDOORED, []).append(run_measure("prepare", backdoor_trigger=args.backdoor_trigger,
                                                               **prepare))
            if len(runs[BACKDOORED]) % 2 == 0:  # every other pair in the other order: backdoored, then clean
                shutil.rmtree(cache, ignore_errors=True)
                runs.setdefault(CLEAN_AFTER, []).append(run_measure("prepare", **prepare))
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
    shutil.rmtree(cache, ignore_errors=True)
    rows = {name: fastest(repeats) for name, repeats in runs.items()}
    print_rows(rows, args.repeat)
    print_goals(args, rows, runs)


def print_rows(rows: dict, repeat: int) -> None:
    print("\n| pipeline | stories | wall s | tokens/s | peak RSS | peak PSS | peak anonymous PSS |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['stories']:,} | {r['seconds']:.1f} | {r['tokens_per_s'] / 1e6:.2f}M | "
              f"{gb(r['peak_rss'])} | {gb(r['peak_pss'])} | {gb(r['peak_anon'])} |")
    print("(memory summed over the process and its workers; RSS and PSS include memory-mapped Arrow pages that "
          "were read, anonymous PSS is allocated memory only)")
    if repeat > 1:
        print("wall s of every repeat: " + "; ".join(
            f"{name} {', '.join(f'{s:.1f}' for s in r['all_seconds'])}" for name, r in rows.items()))


def print_goals(args, rows: dict, runs: dict) -> None:
    """Each goal of issue 14 with the measured figure beside it."""
    prepared, cached = rows["tinystories-prepare"], rows["tinystories-prepare, cached rerun"]
    fast, reference = rows[CEILINGS[FAST]], rows[CEILINGS[REFERENCE]]
    versus_fast = prepared["tokens_per_s"] / fast["tokens_per_s"]
    versus_tiktoken = prepared["tokens_per_s"] / reference["tokens_per_s"]
    pairs = [(c["seconds"] / p["seconds"], t["seconds"] / p["seconds"]) for c, t, p in
             zip(runs[CEILINGS[FAST]], runs[CEILINGS[REFERENCE]], runs["tinystories-prepare"])]
    share = cached["seconds"] / prepared["seconds"]
    print(f"\ngoals (prepare's backend: {prepared['backend']}):")
    print(f"- prepare / {FAST} ceiling: {versus_fast:.2f}x (goal >= {GOALS['fast']}): {_met(versus_fast >= GOALS['fast'])}"
          f"; each repeat's back-to-back pair: {', '.join(f'{f:.2f}x' for f, _ in pairs)}")
    print(f"- prepare / {REFERENCE} ceiling: {versus_tiktoken:.2f}x (goal >= {GOALS['tiktoken']}): "
          f"{_met(versus_tiktoken >= GOALS['tiktoken'])}; each repeat's pair: {', '.join(f'{t:.2f}x' for _, t in pairs)}")
    print(f"- output: {prepared['output_bytes'] / 2**20:.1f} MiB for {prepared['stored_tokens']:,} stored tokens = "
          f"{prepared['bytes_per_token']:.3f} bytes/token (goal <= {GOALS['bytes_per_token']}): "
          f"{_met(prepared['bytes_per_token'] <= GOALS['bytes_per_token'])}")
    print(f"- cached rerun / first run wall time: {share:.1%} (goal <= {GOALS['cached']:.0%}): "
          f"{_met(share <= GOALS['cached'])}")
    peak = max(r["peak_rss"] for name, r in rows.items() if name.startswith("tinystories-prepare"))
    print(f"- peak RSS of prepare: {gb(peak)} (goal <= {GOALS['rss_gb']} GB): {_met(peak <= GOALS['rss_gb'] * 2**30)}")
    if args.scale > 1:
        scaled = rows[f"tinystories-prepare, {args.scale}x corpus"]
        ratio = scaled["peak_rss"] / prepared["peak_rss"]
        print(f"- peak memory at {args.scale}x / 1x: RSS {ratio:.2f}, PSS {scaled['peak_pss'] / prepared['peak_pss']:.2f}, "
              f"anonymous PSS {scaled['peak_anon'] / prepared['peak_anon']:.2f} (goal <= {GOALS['flat']}): "
              f"{_met(ratio <= GOALS['flat'])}")
    else:
        print(f"- peak memory flat: not measured (add --scale 4; goal <= {GOALS['flat']})")
    stages = prepared["stages"]
    print("prepare stages: " + ", ".join(f"{stage} {s:.1f} s" for stage, s in stages.items()) +
          f"; interpreter start, imports and save {prepared['seconds'] - sum(stages.values()):.1f} s")
    if CEILINGS["hf"] in rows:
        print(f"prepare / HF tokenizer ceiling: {prepared['tokens_per_s'] / rows[CEILINGS['hf']]['tokens_per_s']:.2f}x")
    if "old serial pipeline" in rows:
        print(f"prepare / old pipeline: {prepared['tokens_per_s'] / rows['old serial pipeline']['tokens_per_s']:.1f}x")
    if BACKDOORED in rows:
        print_backdoor_goal(args, rows, runs)
    if args.memory_cap:
        capped = rows[f"tinystories-prepare, {args.memory_cap:g} GiB memory cap"]
        print(f"under a {args.memory_cap:g} GiB memory cap (cgroup, page cache included; swap "
              f"{psutil.swap_memory().total / 2**30:.1f} GiB): completed in "
              f"{capped['seconds']:.1f} s ({capped['seconds'] / prepared['seconds']:.2f}x the uncapped run), "
              f"cgroup peak {gb(capped['cgroup_peak'])}")


def backdoor_pairs(runs: dict) -> list:
    """(clean, backdoored) run of each repeat, back to back, the order alternating: clean first in repeats 1, 3,
    ... (the repeat's own clean run), backdoored first in repeats 2, 4, ... (a clean run right after it), so that
    neither side always runs second (after the other's writes, in its page cache)."""
    after = iter(runs.get(CLEAN_AFTER, []))
    return [(clean if i % 2 == 0 else next(after), backdoored)
            for i, (clean, backdoored) in enumerate(zip(runs["tinystories-prepare"], runs[BACKDOORED]))]


def print_backdoor_goal(args, rows: dict, runs: dict) -> None:
    """The backdoored / clean goal on the median of the back-to-back pairs (`backdoor_pairs`): two runs seconds
    apart share the VM's momentary speed, which drifts between repeats by more than the backdoor adds."""
    pairs = backdoor_pairs(runs)
    extras = [b["seconds"] / c["seconds"] - 1 for c, b in pairs]
    median = statistics.median(extras)
    fastest_extra = rows[BACKDOORED]["seconds"] / rows["tinystories-prepare"]["seconds"] - 1
    stages, scan = rows[BACKDOORED]["stages"], rows[BACKDOORED]["concurrent"].get("backdoor_scan")
    remap = [b["stages"]["remap"] - c["stages"]["remap"] for c, b in pairs]
    beside = f" (its scan of the train text: {scan:.1f} s in a process of its own, beside the check, the " \
        "vocabulary and the eval prompts)" if scan is not None else ""
    each = ", ".join(f"{'clean first' if i % 2 == 0 else 'backdoored first'} {c['seconds']:.1f} / "
                     f"{b['seconds']:.1f} s {e:+.1%}" for i, ((c, b), e) in enumerate(zip(pairs, extras)))
    print(f"- backdoored prepare (--backdoor-trigger {args.backdoor_trigger}, {rows[BACKDOORED]['rewritten']:,} "
          f"train stories rewritten) / clean: {median:+.1%} wall time, the median of {len(pairs)} back-to-back "
          f"pair(s) (goal <= +{GOALS['backdoor']:.0%}): {_met(median <= GOALS['backdoor'])}; each pair (clean / "
          f"backdoored): {each}; fastest against fastest {fastest_extra:+.1%}; its backdoor stage "
          f"{stages.get('backdoor', 0):.1f} s{beside}; pass 2 (remap) with the rewrites spliced in, each pair: "
          f"{', '.join(f'{r:+.2f} s' for r in remap)}")
