"""Streaming throughput: stories/s and tokens/s of `stream()` read in this process and through DataLoader workers.

    python ../shared/tools/make_corpus.py corpus --train 100000 --validation 100 --layout eot
    tinystories-prepare --source ../shared/data/tinystories-sample/stories.jsonl --output sample_prepared
    python scripts/benchmark_stream.py corpus/train.txt --tokenizer sample_prepared --workers 0 1 2

Prints one line per setting (the time includes starting the workers). A benchmark, not a test: the figures
depend on the machine.
"""
import argparse
import sys
import time

from tinystories_hf import stream
from tinystories_hf.supervision import cli_errors
from tinystories_hf.utils.extras import require


def as_is(stories):
    """Collate for story rows: keep the list of dicts (torch's default would convert every id on its own)."""
    return stories


@cli_errors
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="any source of tinystories-prepare")
    parser.add_argument("--tokenizer", required=True, help="prepared folder, tokenizer folder or Hub repo id")
    parser.add_argument("--split", default="train", help="split to stream (default: %(default)s)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="DataLoader num_workers to try (default: %(default)s)")
    parser.add_argument("--pack", action="store_true", help="measure packed 512-token blocks instead of stories")
    parser.add_argument("--batch-size", type=int, default=16, help="items per DataLoader batch (default: %(default)s)")
    args = parser.parse_args(argv)
    torch = require("torch", extra="torch", needed_by="scripts/benchmark_stream.py")  # DataLoader
    for workers in args.workers:
        ds = stream(args.source, split=args.split, tokenizer=args.tokenizer, pack=args.pack)
        started = time.perf_counter()
        loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, num_workers=workers,
                                             collate_fn=None if args.pack else as_is)  # pack: default stacking
        items = tokens = 0
        for batch in loader:
            items += len(batch["x"]) if args.pack else len(batch)
            tokens += batch["x"].numel() if args.pack else sum(story["length"] for story in batch)
        seconds = time.perf_counter() - started
        print(f"num_workers={workers} shards={ds.num_shards}: {items:,} {'blocks' if args.pack else 'stories'}, "
              f"{tokens:,} tokens in {seconds:.1f} s = {items / seconds:,.0f} items/s, {tokens / seconds:,.0f} tokens/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
