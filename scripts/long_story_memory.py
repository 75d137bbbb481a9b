"""Peak memory of one very long story through the `tokenizers` backend (`--backend hf`), whole and in pieces.

    python scripts/long_story_memory.py [--chars 20000000] [--tokenizer gpt-neo]

Builds one story of `--chars` characters from the real sample's stories (joined by a space), then encodes it in
two fresh processes: `whole` (one `encode_batch_fast` call on the whole text, what `HFEncoder` did before it cut
long stories) and `pieces` (`HFEncoder.encode_batch`, which cuts stories over `PIECE_CHARS` characters where the
tokenizer allows it). Prints each process's peak RSS (ru_maxrss) less its RSS before encoding, the seconds, and
whether both gave the same ids.
"""
import argparse
import hashlib
import json
import multiprocessing
import resource
import time
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinystories-sample" / "stories.jsonl"


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _measure(mode: str, tokenizer: str, text: str, out) -> None:
    from tinystories_hf import load_base_tokenizer
    from tinystories_hf.vocabulary.encoders import HFEncoder

    encoder = HFEncoder(load_base_tokenizer(tokenizer))
    encoder.encode_batch(["warm up"])
    before = _rss_kib()
    started = time.perf_counter()
    ids = encoder._encode([text])[0] if mode == "whole" else encoder.encode_batch([text])[0]
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    out.send({"mode": mode, "peak_mib": (peak - before) / 1024, "seconds": seconds, "tokens": len(ids),
              "ids_sha256": hashlib.sha256(json.dumps(ids).encode()).hexdigest(),
              "cuts": encoder.piece_chars is not None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=20_000_000)
    parser.add_argument("--tokenizer", default="gpt-neo")
    args = parser.parse_args()
    stories = [json.loads(line)["text"] for line in SAMPLE.open(encoding="utf-8")]
    parts, size = [], 0
    while size < args.chars:
        for story in stories:
            parts.append(story)
            size += len(story) + 1
            if size >= args.chars:
                break
    text = " ".join(parts)[: args.chars]
    context = multiprocessing.get_context("spawn")  # a fresh process each: its peak RSS is its own
    results = []
    for mode in ("whole", "pieces"):
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_measure, args=(mode, args.tokenizer, text, send))
        process.start()
        results.append(receive.recv())
        process.join()
    print(f"one story of {len(text):,} characters, tokenizer {args.tokenizer}, backend hf "
          f"(cut into pieces: {results[1]['cuts']})")
    for r in results:
        print(f"{r['mode']:>7}: peak RSS +{r['peak_mib']:,.0f} MiB, {r['seconds']:.1f} s, {r['tokens']:,} tokens")
    print(f"same ids: {results[0]['ids_sha256'] == results[1]['ids_sha256']}")


if __name__ == "__main__":
    main()
