"""Vocabularies trained on the corpus, full vocabularies and the exports, at TinyStories' size.

    python scripts/benchmark.py --vocabularies                   # both trainers, prepare with their ids, exports
    python scripts/benchmark.py --vocabularies --train-all       # also both trainers on every train story
    python scripts/benchmark.py --vocabularies --source DIR      # on a corpus made before (make_corpus.py)

Every row is one command as a user types it, in its own subprocess, while the sampler reads the memory of it
and its children every 0.5 s (`memory.run_measure`), on the corpus of the prepare benchmark. The source is
converted once (the first row; its `load` stage is in its time); the later rows read datasets' cache of it,
and each prepare row starts from an empty cache of its own ids (the ids of one vocabulary are never another's).
The prepare rows are compared with GPT-2's full-vocabulary prepare of the same run (x GPT-2), each with its
`stage_seconds`; the cached rerun of the default prepare with its first run.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tinystories_hf.config import option

from .corpus import make_corpus, validation_size
from .memory import gb, machine, run_measure


@dataclass
class VocabularyBenchmarkConfig:
    """Options of `--vocabularies`."""

    train_all: bool = option(False, "also train both tokenizers on every train story (--sample-size all)")
    vocab: int = option(4096, "--vocab-size of the trained tokenizers (llama2.c's README example)")
    source: str = option("", "an existing corpus folder (make_corpus.py's) instead of one made in --workdir")


PREPARE_COMMAND = [sys.executable, "-c", "import sys, tinystories_hf_cli; sys.exit(tinystories_hf_cli.prepare())"]


def _info_identity(output: Path):
    """(inode, ctime ns) of OUTPUT/prepare_info.json, None without one: unchanged when a run rewrote nothing."""
    path = output / "prepare_info.json"
    return (path.stat().st_ino, path.stat().st_ctime_ns) if path.exists() else None


def measure_command(args) -> dict:
    """One command (`--command` JSON argv, run with this interpreter), timed; its tokens from what it wrote."""
    argv = json.loads(args.command)
    output = Path(argv[argv.index("--output") + 1])
    before = _info_identity(output)
    # tinystories-prepare as its console script starts it: an up-to-date output is answered before datasets loads
    command = [*PREPARE_COMMAND, *argv[1:]] if argv[0] == "tinystories_hf.pipeline" else [sys.executable, "-m", *argv]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    tokens, extra = 0, {}
    if (output / "prepare_info.json").exists() and _info_identity(output) == before:  # up to date: not rewritten
        tokens = sum(c["tokens"] for c in json.loads((output / "prepare_info.json").read_text())["splits"].values())
        extra = {"up_to_date": True}
    elif (output / "prepare_info.json").exists():
        info = json.loads((output / "prepare_info.json").read_text())
        tokens = sum(c["tokens"] for c in info["splits"].values())
        extra = {"stages": info["stage_seconds"], "backend": info["backend"], "fallback": info.get("backend_fallback"),
                 "elapsed": info["elapsed_seconds"]}
    else:  # an export: OUT/export_info.json, or OUT/tok{N}/export_info.json for llama2c
        for info in output.rglob("export_info.json"):
            tokens += sum(f.get("tokens", 0) for f in json.loads(info.read_text())["files"].values())
    return {"seconds": seconds, "tokens": tokens, "bytes": sum(p.stat().st_size for p in output.rglob("*")
                                                               if p.is_file()), **extra}


def differing_stories(first: Path, second: Path) -> str:
    """How many stories of two prepared folders hold different ids, of how many (their recorded data file
    hashes first: equal hashes, equal ids)."""
    import datasets

    infos = [json.loads((folder / "prepare_info.json").read_text()) for folder in (first, second)]
    total = sum(c["stories"] for c in infos[0]["splits"].values())
    arrow = lambda info: {k: v for k, v in info["data_files"].items() if k.endswith(".arrow")}
    if arrow(infos[0]) == arrow(infos[1]):
        return f"0 of {total:,} (byte-identical data files)"
    differ = 0
    for split, ds in datasets.load_from_disk(str(first)).items():
        other = datasets.load_from_disk(str(second))[split]
        for start in range(0, ds.num_rows, 100_000):
            a = ds[start:start + 100_000]["input_ids"]
            b = other[start:start + 100_000]["input_ids"]
            differ += sum(x != y for x, y in zip(a, b))
    return f"{differ:,} of {total:,}"


def benchmark_vocabularies(args) -> None:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    corpus = Path(args.source) if args.source else make_corpus(workdir, args.stories)
    cache, out = workdir / "cache", workdir / "vocabularies"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    described = f"{corpus}" if args.source else \
        f"{corpus} ({args.stories:,} train + {validation_size(args.stories):,} validation stories)"
    print(f"corpus: {described}; {args.num_proc} processes; {machine()}; load average {os.getloadavg()[0]:.2f} at "
          "the start", flush=True)
    common = ["--num-proc", str(args.num_proc), "--cache-dir", str(cache), "--overwrite"]
    train = ["tinystories_hf.vocabulary.train_tokenizer", "--source", str(corpus), "--vocab-size", str(args.vocab), *common]
    whole = ["--vocab-size", "full", "--max-length", "none", "--min-length", "0"]
    prepare = ["tinystories_hf.pipeline", "--source", str(corpus), *common]
    gpt2 = "tinystories-prepare --vocab-size full (GPT-2's 50,257 ids, whole stories)"
    default, rerun = "tinystories-prepare (the default: GPT-2 reduced to 10,000 ids)", "the same, cached rerun"
    rows = [
        ("tinystories-train-tokenizer --model bpe (sample 100,000; converts the source)",
         [*train, "--model", "bpe", "--output", str(out / "bpe")]),
        ("tinystories-train-tokenizer --model sentencepiece (sample 100,000)",
         [*train, "--model", "sentencepiece", "--output", str(out / "spm")]),
    ]
    if args.train_all:
        rows += [(f"tinystories-train-tokenizer --model {model} --sample-size all",
                  [*train, "--model", model, "--sample-size", "all", "--output", str(out / f"{model}-all")])
                 for model in ("bpe", "sentencepiece")]
    rows += [
        (gpt2, [*prepare, *whole, "--output", str(out / "prepared-gpt2")]),
        (f"tinystories-prepare --tokenizer bpe{args.vocab} --vocab-size full (trained byte-level BPE, whole stories)",
         [*prepare, "--tokenizer", str(out / "bpe"), *whole, "--output", str(out / "prepared-bpe")]),
        (f"tinystories-prepare --tokenizer tok{args.vocab}.model --vocab-size full (whole stories)",
         [*prepare, "--tokenizer", str(out / "spm" / f"tok{args.vocab}.model"), *whole, "--output",
          str(out / "prepared-spm")]),
        ("the same with --backend sentencepiece (sentencepiece itself)",
         [*prepare, "--tokenizer", str(out / "spm" / f"tok{args.vocab}.model"), *whole, "--backend", "sentencepiece",
          "--output", str(out / "prepared-spm-reference")]),
        (default, [*prepare, "--output", str(out / "prepared-default")]),
        (rerun, [*prepare, "--output", str(out / "prepared-default")]),
        ("tinystories-export --format nanogpt (of GPT-2's full vocabulary)",
         ["tinystories_hf.exports", str(out / "prepared-gpt2"), "--format", "nanogpt", "--output", str(out / "nanogpt"),
          "--overwrite"]),
        ("tinystories-export --format llama2c (of tok4096)",
         ["tinystories_hf.exports", str(out / "prepared-spm"), "--format", "llama2c", "--output", str(out / "llama2c"),
          "--overwrite"]),
        ("tinystories-export --format llmc (of GPT-2's full vocabulary)",
         ["tinystories_hf.exports", str(out / "prepared-gpt2"), "--format", "llmc", "--output", str(out / "llmc"),
          "--overwrite"]),
        ("tinystories-export --format megatron (of GPT-2's full vocabulary)",
         ["tinystories_hf.exports", str(out / "prepared-gpt2"), "--format", "megatron", "--output",
          str(out / "megatron"), "--overwrite"]),
    ]
    print("\n| command | wall s | x GPT-2 | tokens written | output | peak RSS | peak anonymous PSS |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    results = {}
    for name, argv in rows:
        if argv[0] == "tinystories_hf.pipeline" and name != rerun:  # each vocabulary's ids from scratch
            for ids in [*cache.rglob("cache-*.arrow*"), *cache.rglob("check-*.json")]:
                ids.unlink()
        r = results[name] = run_measure("command", command=json.dumps(argv))
        ratio = f"{r['seconds'] / results[gpt2]['seconds']:.2f}x" if "stages" in r and gpt2 in results else ""
        print(f"| {name} | {r['seconds']:.1f} | {ratio} | {r['tokens']:,} | {r['bytes'] / 2**20:,.1f} MiB | "
              f"{gb(r['peak_rss'])} | {gb(r['peak_anon'])} |", flush=True)
    print("\nwhere each prepare's time went (stage_seconds; the rest is interpreter start, imports and save):")
    for name, r in results.items():
        if "stages" in r:
            fallback = f"; FELL BACK: {r['fallback']['reason']}" if r.get("fallback") else ""
            print(f"- {name}: backend {r['backend']}{fallback}; " + ", ".join(
                f"{stage} {s:.1f} s" for stage, s in r["stages"].items()) +
                f"; the rest {r['seconds'] - sum(r['stages'].values()):.1f} s")
    fast, reference = out / "prepared-spm", out / "prepared-spm-reference"
    print(f"\ntok{args.vocab}: stories whose ids differ between the fast form and sentencepiece itself: "
          f"{differing_stories(fast, reference)}")
    print(f"\ncached rerun / first run of the default prepare: {results[rerun]['seconds'] / results[default]['seconds']:.1%}"
          " (goal <= 10%)")
    shutil.rmtree(cache, ignore_errors=True)
