"""The three vocabularies side by side on the same stories: the paper's reduced GPT-Neo, a trained byte-level BPE
and llama2.c's SentencePiece BPE, with the figures `tinystories-report` measures (README "Your own vocabulary").

    python scripts/compare_vocabularies.py                      # the real sample in ../shared/data
    python scripts/compare_vocabularies.py --source DIR --vocab-size 4096

Each is prepared as its users train on it: the reduced vocabulary with the paper's options (stories cut at 512
tokens), the trained ones with their own ids and whole stories (`--vocab-size full --max-length none
--min-length 0`, as llama2.c and nanoGPT keep them). Tokens per story and bytes per token are counted before
truncation, so the three compare the same text.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

from tinystories_hf import PrepareConfig, prepare, write_report
from tinystories_hf.supervision import cli_errors
from tinystories_hf.vocabulary.train_tokenizer import TrainTokenizerConfig, train_tokenizer

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinystories-sample" / "stories.jsonl"


@cli_errors
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=str(SAMPLE), help="stories to compare on (default: the real sample)")
    parser.add_argument("--vocab-size", type=int, default=4096, help="ids of the trained tokenizers")
    parser.add_argument("--reduced-size", type=int, default=10_000, help="ids of the reduced GPT-Neo vocabulary")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tinystories-compare-") as work:
        work = Path(work)
        folders = {f"reduced GPT-Neo, {args.reduced_size:,} ids": prepare(PrepareConfig(
            source=args.source, output=str(work / "reduced"), vocab_size=args.reduced_size)).output}
        for model in ("bpe", "sentencepiece"):
            started = time.perf_counter()
            trained = train_tokenizer(TrainTokenizerConfig(source=args.source, output=str(work / model), model=model,
                                                           vocab_size=args.vocab_size))
            seconds = time.perf_counter() - started
            tokenizer = trained.output / f"tok{args.vocab_size}.model" if model == "sentencepiece" else trained.output
            name = f"trained {model}, {args.vocab_size:,} ids (trained in {seconds:.1f} s)"
            folders[name] = prepare(PrepareConfig(source=args.source, output=str(work / f"p-{model}"),
                                                  tokenizer=str(tokenizer), vocab_size="full", max_length=None,
                                                  min_length=0)).output
        for name, folder in folders.items():
            report = write_report(folder)
            rows += [(name, split, s) for split, s in report["splits"].items()]
    print("\n| vocabulary | split | stories | tokens per story | UNK % | bytes per token |\n|---|---|---:|---:|---:|---:|")
    for name, split, s in rows:
        print(f"| {name} | {split} | {s['stories']:,} | {s['tokens_per_story']:.1f} | {100 * s['unk_share']:.3f} | "
              f"{s['bytes_per_token']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
