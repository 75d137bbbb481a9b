"""What a resume costs and how exact it is; prints the figures README "Resuming training" quotes.

    python scripts/measure_resume.py --data DIR
        time to the first batch of a resumed run over a prepared folder: build TinyStoriesDatasetPacked,
        TinyStoriesSampler + load_state_dict (the data fingerprint reads every stored id once), first batch
        of a DataLoader with 2 workers. Each run in a fresh process, so nothing is cached in Python.
    python scripts/measure_resume.py --stream SOURCE [--shuffle-buffer N] [--every K]
        stream() resumed through datasets' IterableDataset state at every K-th story: stories repeated and
        skipped against the uninterrupted stream.
"""
import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tinystories_hf.errors import TinyStoriesError, check_int
from tinystories_hf.supervision import cli_errors
from tinystories_hf.utils.extras import require

RESUME = """
import json, sys, time
started = time.perf_counter()
import torch
from tinystories_hf import TinyStoriesDatasetPacked, TinyStoriesSampler
imported = time.perf_counter()
dataset = TinyStoriesDatasetPacked(sys.argv[1], split="train", block_size=512)
built = time.perf_counter()
sampler = TinyStoriesSampler(dataset, seed=0, rank=0, world_size=1)
state = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None
if state is None:  # the first run: a state half way through epoch 3, as a checkpoint would hold it
    sampler.set_epoch(3)
    print(json.dumps(dict(sampler.state_dict(), consumed=len(dataset) // 2)))
    sys.exit()
sampler.load_state_dict(state)
loaded = time.perf_counter()
x, y = next(iter(torch.utils.data.DataLoader(dataset, batch_size=64, sampler=sampler, num_workers=2)))
first = time.perf_counter()
print(json.dumps({"items": len(dataset), "imports_s": imported - started, "dataset_s": built - imported,
                  "sampler_and_load_state_dict_s": loaded - built, "first_batch_s": first - loaded,
                  "resume_to_first_batch_s": first - imported}))
"""


def _last_line(command: list) -> str:
    """The last stdout line of a child Python; its last stderr line as one error if it fails."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise TinyStoriesError(f"the resume run failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return done.stdout.strip().splitlines()[-1]


def measure_sampler(folder: str, runs: int) -> None:
    run = [sys.executable, "-c", RESUME, folder]
    state = _last_line(run)
    for _ in range(runs):
        print(_last_line(run + [state]))


def measure_stream(source: str, shuffle_buffer: int, every: int) -> None:
    from tinystories_hf import stream
    from tinystories_hf.stream import StreamConfig, load_tokenizer

    tokenizer = load_tokenizer(None, StreamConfig(source=source, vocab_stories=500, vocab_size=300))

    def rows(ds):
        return (tuple(row["input_ids"]) for row in ds)

    options = {"tokenizer": tokenizer, "shuffle_buffer": shuffle_buffer, "seed": 0}
    whole = list(rows(stream(source, **options)))
    counts, points, exact, worst = Counter(whole), 0, 0, [0, 0]
    started = time.perf_counter()
    for k in range(every // 3, len(whole), every):
        first = stream(source, **options)
        it = rows(first)
        before = [next(it) for _ in range(k)]
        resumed = stream(source, **options)
        resumed.load_state_dict(first.state_dict())
        after = list(rows(resumed))
        seen = Counter(before + after)
        repeated, skipped = sum((seen - counts).values()), sum((counts - seen).values())
        points, exact = points + 1, exact + (after == whole[k:])
        worst = [max(worst[0], repeated), max(worst[1], skipped)]
        print(f"resumed after {k:,} stories: {repeated} repeated, {skipped} skipped", flush=True)
    print(json.dumps({"source": source, "stories": len(whole), "shuffle_buffer": shuffle_buffer,
                      "resume_points": points, "exact": exact, "max_repeated": worst[0], "max_skipped": worst[1],
                      "seconds": round(time.perf_counter() - started, 1)}))


@cli_errors
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="prepared folder: time to the first batch of a sampler resume")
    parser.add_argument("--runs", type=int, default=3, help="resumes to time (--data) (default: %(default)s)")
    parser.add_argument("--stream", help="source for stream(): stories repeated/skipped by a resume")
    parser.add_argument("--shuffle-buffer", type=int, default=0,
                        help="stream()'s shuffle_buffer (--stream) (default: %(default)s)")
    parser.add_argument("--every", type=int, default=150,
                        help="resume after every K-th story (--stream) (default: %(default)s)")
    args = parser.parse_args(argv)
    if not (args.data or args.stream):
        parser.error("pass --data DIR or --stream SOURCE")
    check_int("runs", args.runs, low=1)
    check_int("every", args.every, low=1)
    if args.data:
        require("torch", extra="torch", needed_by="measure_resume.py --data")
        if not Path(args.data, "prepare_info.json").is_file():
            raise TinyStoriesError(f"--data {args.data}: no prepare_info.json there; pass a folder written by "
                                   "tinystories-prepare")
        measure_sampler(args.data, args.runs)
    if args.stream:
        measure_stream(args.stream, args.shuffle_buffer, args.every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
