"""Encode-only ceilings: the encoder call prepare makes, on texts already in memory, in `num_proc` processes."""
import multiprocessing
import queue
import time

import numpy as np

from tinystories_hf.tokenize.passes import ENCODE_BATCH_SIZE

from .corpus import row_group_shares

# backend -> what the ceiling measures (the encoder prepare uses with `--backend NAME`)
CEILINGS = {"fastokens": "fastokens ceiling (the fastest exact encoder)", "tiktoken": "tiktoken ceiling",
            "hf": "HF tokenizer ceiling"}


def _encode_share(backend: str, share: list, ready, results) -> None:
    """One ceiling worker: read its row groups into its own memory, build the encoder, wait for the
    others, then time encoding alone: the encoder call prepare makes, on batches of the same size."""
    import pyarrow.parquet as pq

    from tinystories_hf.vocabulary.base import load_base_tokenizer, make_encoder

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
