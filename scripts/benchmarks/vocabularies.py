"""Vocabularies trained on the corpus, full vocabularies and the exports, at TinyStories' size.

    python scripts/benchmark.py --vocabularies                   # both trainers, prepare with their ids, exports
    python scripts/benchmark.py --vocabularies --train-all       # also both trainers on every train story

Every row is one command as a user types it, in its own subprocess, while the sampler reads the memory of it
and its children every 0.5 s (`memory.run_measure`), on the corpus of the prepare benchmark. The source is
converted once (the first row; its `load` stage is in its time); the later rows read datasets' cache of it.
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


def measure_command(args) -> dict:
    """One command (`--command` JSON argv, run with this interpreter), timed; its tokens from what it wrote."""
    argv = json.loads(args.command)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    output = Path(argv[argv.index("--output") + 1])
    tokens = 0
    if (output / "prepare_info.json").exists():
        tokens = sum(c["tokens"] for c in json.loads((output / "prepare_info.json").read_text())["splits"].values())
    else:  # an export: OUT/export_info.json, or OUT/tok{N}/export_info.json for llama2c
        for info in output.rglob("export_info.json"):
            tokens += sum(f.get("tokens", 0) for f in json.loads(info.read_text())["files"].values())
    return {"seconds": seconds, "tokens": tokens, "bytes": sum(p.stat().st_size for p in output.rglob("*")
                                                               if p.is_file())}


def benchmark_vocabularies(args) -> None:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    corpus = make_corpus(workdir, args.stories)
    cache, out = workdir / "cache", workdir / "vocabularies"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    print(f"corpus: {corpus} ({args.stories:,} train + {validation_size(args.stories):,} validation stories); "
          f"{args.num_proc} processes; {machine()}; load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    common = ["--num-proc", str(args.num_proc), "--cache-dir", str(cache), "--overwrite"]
    train = ["tinystories_hf.vocabulary.train_tokenizer", "--source", str(corpus), "--vocab-size", str(args.vocab), *common]
    whole = ["--vocab-size", "full", "--max-length", "none", "--min-length", "0"]
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
        ("tinystories-prepare --tokenizer tok4096.model --vocab-size full (whole stories)",
         ["tinystories_hf.pipeline", "--source", str(corpus), "--tokenizer", str(out / "spm" / f"tok{args.vocab}.model"),
          *whole, "--output", str(out / "prepared-spm"), *common]),
        ("tinystories-prepare --vocab-size full (GPT-2's 50,257 ids, whole stories)",
         ["tinystories_hf.pipeline", "--source", str(corpus), *whole, "--output", str(out / "prepared-gpt2"), *common]),
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
    print("\n| command | wall s | tokens written | output | peak RSS | peak anonymous PSS |\n|---|---:|---:|---:|---:|---:|")
    for name, argv in rows:
        r = run_measure("command", command=json.dumps(argv))
        print(f"| {name} | {r['seconds']:.1f} | {r['tokens']:,} | {r['bytes'] / 2**20:,.1f} MiB | {gb(r['peak_rss'])} "
              f"| {gb(r['peak_anon'])} |", flush=True)
    shutil.rmtree(cache, ignore_errors=True)
