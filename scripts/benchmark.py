"""Benchmarks that print figures (never pass/fail): run them on the machine whose numbers you quote.

    python scripts/benchmark.py                                   # prepare vs ceilings, TinyStories' size
    python scripts/benchmark.py --stories 300000 --scale 4        # smaller, plus peak memory at 4x the corpus
    python scripts/benchmark.py --memory-cap 2 --repeat 2         # plus prepare in a 2 GiB cgroup; best of 2
    python scripts/benchmark.py --hf-ceiling --old-pipeline       # plus the HF ceiling and the old pipeline
    python scripts/benchmark.py --stories 300000 --backdoor-trigger Jane --repeat 2   # backdoored vs clean
    python scripts/benchmark.py --encoders                        # exact ids and speed of GPT-2 encoders
    python scripts/benchmark.py --wheels                          # their wheels, license, releases (PyPI)
    python scripts/benchmark.py --loaders --data tinystories_prepared   # the training adapters
    python scripts/benchmark.py --vocabularies [--train-all]      # trained tokenizers, full vocabularies, exports
    python scripts/benchmark.py --clean                           # remove --workdir: corpora, caches, outputs

Prepare (benchmarks/prepare.py): every row runs on the same corpus (made by ../shared/tools/make_corpus.py:
real sentences in real story shapes, Hub parquet layout) in its own subprocess, while a sampler reads the
memory of that process and all its children every 0.5 s. Each repeat runs the tiktoken and the fastokens
(the fastest exact encoder) encode-only ceilings right before prepare, and prints the goals with the
measured figure beside each.

The corpora, caches and outputs live in `--workdir` (default: the system's temporary folder, several GB at
TinyStories' size): each run prints where and how big it is; `--clean` removes it and runs nothing else.
"""
import argparse
import json
import sys
from pathlib import Path

from tinystories_hf.config import CommandParser, add_config_arguments, config_from_args
from tinystories_hf.supervision import cli_errors

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ beside this file, also under runpy
from benchmarks.encoders import evaluate, wheels
from benchmarks.loaders import ListPackedReference, LoaderBenchmarkConfig, benchmark_loaders  # noqa: F401
from benchmarks.prepare import MEASURES, PrepareBenchmarkConfig, benchmark_prepare
from benchmarks.vocabularies import VocabularyBenchmarkConfig, benchmark_vocabularies, measure_command
from benchmarks.workdir import claim, clean, summary

WHEEL_PACKAGES = ("fastokens", "splintr-rs", "tokie", "riptoken", "kitoken", "gigatoken", "wordchipper",
                  "bpe-openai", "toktok-rs", "tiktoken", "tokenizers")


@cli_errors
def main(argv=None) -> int:
    parser = CommandParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--loaders", action="store_true", help="benchmark the training adapters instead")
    parser.add_argument("--vocabularies", action="store_true", help="benchmark the tokenizer trainers, full "
                        "vocabularies and the exports instead")
    parser.add_argument("--encoders", action="store_true", help="evaluate the installed GPT-2 encoders instead")
    parser.add_argument("--fuzz", type=int, default=20_000, help="--encoders: random unicode strings compared")
    parser.add_argument("--wheels", action="store_true", help="print the candidates' wheels and releases (PyPI)")
    parser.add_argument("--clean", action="store_true", help="remove --workdir (the corpora, caches and outputs the "
                        "benchmarks leave there, several GB) and print how much it freed; runs nothing else")
    add_config_arguments(parser, PrepareBenchmarkConfig)
    add_config_arguments(parser, LoaderBenchmarkConfig)
    add_config_arguments(parser, VocabularyBenchmarkConfig)
    parser.add_argument("--measure", choices=sorted([*MEASURES, "command"]), help=argparse.SUPPRESS)
    for hidden in ("corpus", "output", "cache-dir", "limit", "command"):
        parser.add_argument(f"--{hidden}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure == "command":
        print(json.dumps(measure_command(args)))
    elif args.measure:  # inside a measured subprocess: run one pipeline, print its figures as JSON
        args.corpus = Path(args.corpus)
        args.limit = int(args.limit) if args.limit else None
        print(json.dumps(MEASURES[args.measure](args)))
    elif args.encoders:
        evaluate(args.fuzz)
    elif args.wheels:
        wheels(WHEEL_PACKAGES)
    elif args.loaders:
        benchmark_loaders(args)
    elif args.clean:
        print(clean(Path(args.workdir).expanduser()))
    else:
        workdir = claim(Path(args.workdir).expanduser())
        print(f"working folder: {workdir} (corpora, caches, outputs; --workdir moves it, --clean removes it)")
        try:
            if args.vocabularies:
                benchmark_vocabularies(args)
            else:
                benchmark_prepare(config_from_args(args, PrepareBenchmarkConfig))
        finally:  # also after a failure or Ctrl-C: what it left is the user's disk
            print(summary(workdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
