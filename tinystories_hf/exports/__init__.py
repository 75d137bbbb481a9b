"""`tinystories-export`: a prepared folder as the raw token files the trainers people already run read.

    tinystories-export ts --format nanogpt --output nanoGPT/data/tinystories   # train.bin, val.bin, meta.pkl
    tinystories-export ts --format llama2c --output llama2.c/data              # tok{N}/data*.bin, tok{N}.model

One module per format, as datasets' `packaged_modules`: `nanogpt.py` (karpathy/nanoGPT's `prepare.py` layout:
each story's ids, then EOS) and `llama2c.py` (karpathy/llama2.c's `tinystories.py pretokenize` layout: BOS,
then each story's ids, in `tok{N}` shards). Both are raw little-endian `uint16` with no header, the stories in
the stored order, as those scripts write them; a vocabulary of more than 65,536 ids cannot be exported.

The ids are read through the memory-mapped Arrow files, a window of `WINDOW_TOKENS` at a time, and written
in chunks (memory stays flat at any corpus size); the output is written to a temporary folder moved into
place, one writer at a time (`atomic.atomic_folder`, as `tinystories-prepare`), and `export_info.json`
records what was exported from (the folder's vocabulary sha256 and split fingerprints, each file's sha256).
"""
import argparse
import dataclasses
import hashlib
import itertools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import add_config_arguments, config_from_args, option
from ..errors import TinyStoriesError, check_int, flag
from ..store.folder import PREPARE_INFO
from ..store.load import read_prepared
from ..supervision import api_errors, cli_errors, offers
from ..utils.atomic import atomic_folder, check_output, hold_writer_lock
from ..utils.mapped_pages import PageReleaser

FORMATS = ("nanogpt", "llama2c")
EXPORT_INFO = "export_info.json"
WINDOW_TOKENS = 1 << 23  # ids read, framed and written at a time: 8M ids, 16 MB in and 16 MB out
UINT16_IDS = 65_536


@dataclass
class ExportConfig:
    """Options of `export()` and of `tinystories-export` (`--help` shows the defaults); `prepared` is the
    positional DIR.

    Example:
        >>> ExportConfig(prepared="ts", format="llama2c", output="data").max_seq_len
        256
    """

    prepared: str = option("tinystories_prepared", "prepared folder to export (tinystories-prepare's output)")
    format: str = option("nanogpt", "nanogpt (train.bin, val.bin, meta.pkl) or llama2c (tok{N}/ shards, "
                         "tok{N}.model)")
    output: str = option("tinystories_export", "folder to write: nanoGPT's data/<dataset>, or llama2.c's data/")
    shard_stories: int = option(100_000, "llama2c: train stories per shard (llama2.c's own shards hold ~100K)")
    max_seq_len: int = option(256, "llama2c: the max_seq_len you train with (llama2.c's default): every shard "
                              "must hold 2 x max_seq_len tokens or more, or PretokDataset stops")
    overwrite: bool = option(False, "replace an existing output folder")

    def validate(self) -> None:
        from ..config import check_types

        check_types(self)
        if self.format not in FORMATS:
            raise TinyStoriesError(f"{flag('format', self.format)} is not one of {', '.join(FORMATS)}")
        check_int("shard_stories", self.shard_stories, low=1)
        check_int("max_seq_len", self.max_seq_len, low=1)


def story_windows(dataset, first: int = 0, end: int | None = None, *, releaser: PageReleaser | None = None):
    """`(lengths, values)` of the stored stories `first..end-1` of a split, in order, a window of about
    `WINDOW_TOKENS` ids at a time: `lengths` int64 per story, `values` the ids (zero-copy views of the
    memory-mapped Arrow data, whose pages `releaser` lets go once read)."""
    releaser = releaser or PageReleaser()
    end, row = dataset.num_rows if end is None else end, 0
    for chunk in dataset.data.column("input_ids").chunks:
        lo, hi = max(first - row, 0), min(end - row, len(chunk))
        row += len(chunk)
        if lo >= hi:
            continue
        # chunk.values is the whole values buffer and chunk.offsets index into it, also for sliced chunks.
        offsets = chunk.offsets.to_numpy(zero_copy_only=True)[lo:hi + 1]
        values = chunk.values.to_numpy(zero_copy_only=True)
        cuts = np.searchsorted(offsets, np.arange(offsets[0], offsets[-1], WINDOW_TOKENS)[1:], side="right") - 1
        bounds = np.unique(np.concatenate([[0], cuts, [len(offsets) - 1]]))
        for a, b in itertools.pairwise(bounds):
            yield np.diff(offsets[a:b + 1]).astype(np.int64), values[offsets[a]:offsets[b]]
            releaser.read(chunk.values.slice(offsets[a], offsets[b] - offsets[a]))


def framed(lengths: np.ndarray, values: np.ndarray, separator: int, *, before: bool) -> np.ndarray:
    """The stories as one uint16 stream with `separator` after each (nanoGPT's EOT) or, with `before`, before
    each (llama2.c's BOS).

    Example:
        >>> framed(np.array([2, 1]), np.array([5, 6, 7], np.uint16), 0, before=True).tolist()
        [0, 5, 6, 0, 7]
    """
    out = np.empty(len(values) + len(lengths), dtype=np.uint16)
    starts = np.cumsum(lengths + 1) - lengths - 1  # where each story's frame begins
    marks = starts if before else starts + lengths
    is_id = np.ones(len(out), dtype=bool)
    is_id[marks] = False
    out[marks] = separator
    out[is_id] = values
    return out


class StreamWriter:
    """Writes framed stories into one file, window by window, counting tokens and hashing the bytes."""

    def __init__(self, path: Path):
        self.path, self.tokens, self.digest = path, 0, hashlib.sha256()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "wb")  # noqa: SIM115 -- closed by close(), after the last window

    def write(self, stream: np.ndarray) -> None:
        data = stream.astype("<u2", copy=False).tobytes()
        self.file.write(data)
        self.digest.update(data)
        self.tokens += len(stream)

    def close(self) -> dict:
        self.file.close()
        return {"tokens": self.tokens, "bytes": self.tokens * 2, "sha256": self.digest.hexdigest()}


@dataclass
class ExportResult:
    """What `export()` wrote: the folder, every file with its tokens, bytes and sha256, and the seconds taken."""

    output: Path
    files: dict
    info: dict
    seconds: float


def _progress(total: int, what: str):
    from datasets.utils.tqdm import tqdm

    return tqdm(total=total, desc=what, unit=" tokens", unit_scale=True)


@api_errors
def export(config: ExportConfig) -> ExportResult:
    """Write `config.prepared` in `config.format` to `config.output`, atomically; see `ExportConfig`.

    Raises a one-line `TinyStoriesError` for a damaged or incomplete prepared folder (the checks of
    `load_prepared`), a split the format needs that the folder lacks or that kept no story, a vocabulary that
    does not fit uint16, a llama2c shard too small for `max_seq_len`, and the machine's faults (no space...),
    and `KeyboardInterrupt` on Ctrl-C: the output is then the previous complete folder, or absent.

    Example:
        >>> export(ExportConfig(prepared="ts", format="nanogpt", output="nanoGPT/data/ts"))  # doctest: +SKIP
    """
    from . import llama2c, nanogpt

    offers(f.name for f in dataclasses.fields(config))
    config.validate()
    started = time.perf_counter()
    prepared = Path(config.prepared).expanduser()
    dataset, tokenizer, info = read_prepared(prepared)
    if tokenizer.vocab_size > UINT16_IDS:
        raise TinyStoriesError(f"{prepared}: its vocabulary of {tokenizer.vocab_size:,} ids does not fit the uint16 "
                               f"ids {config.format} reads (at most {UINT16_IDS:,}); prepare it with a smaller "
                               "vocabulary")
    module = {"nanogpt": nanogpt, "llama2c": llama2c}[config.format]
    plan = module.plan(dataset, tokenizer, config)  # [(file name, split, first row, end row)], checked
    output = check_output(config.output, overwrite=config.overwrite, source_files=[prepared], marker=EXPORT_INFO,
                          what="a folder written by tinystories-export")
    hold_writer_lock(output)
    separator, before = module.frame(tokenizer)
    total = sum(int(dataset[split].data.column("length").to_numpy()[first:end].sum()) + (end - first)
                for _, split, first, end in plan)
    files = {}
    with atomic_folder(output, overwrite=config.overwrite) as partial, \
            _progress(total, f"export {config.format}") as bar:
        partial.mkdir(parents=True)
        releaser = PageReleaser()
        for name, split, first, end in plan:
            writer = StreamWriter(partial / name)
            try:
                for lengths, values in story_windows(dataset[split], first, end, releaser=releaser):
                    writer.write(framed(lengths, values, separator, before=before))
                    bar.update(len(values) + len(lengths))
            finally:
                files[name] = writer.close()
        extra = module.extra_files(tokenizer, prepared)
        for name, data in extra.items():
            (partial / name).write_bytes(data)
            files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        export_info = {"format": config.format, "prepared": {"vocab_sha256": info["vocab_sha256"],
                       "prepare_info_sha256": hashlib.sha256((prepared / PREPARE_INFO).read_bytes()).hexdigest(),
                       "splits": {split: ds._fingerprint for split, ds in dataset.items()}},
                       "vocab_size": tokenizer.vocab_size, "separator_id": separator,
                       "separator": "before each story (BOS)" if before else "after each story (EOS)",
                       "dtype": "uint16 little-endian, no header", "files": files}
        (partial / EXPORT_INFO).write_text(json.dumps(export_info, indent=2) + "\n", encoding="utf-8")
    return ExportResult(output=output, files=files, info=export_info, seconds=time.perf_counter() - started)


@cli_errors
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tinystories-export", description="Export a prepared folder as the raw "
                                     "uint16 token files nanoGPT (train.bin, val.bin, meta.pkl) or llama2.c "
                                     "(tok{N}/ shards, tok{N}.model) train on, unchanged.")
    default = ExportConfig.prepared
    parser.add_argument("prepared", nargs="?", default=default, metavar="DIR",
                        help=f"{ExportConfig.__dataclass_fields__['prepared'].metadata['help']} (default: {default})")
    add_config_arguments(parser, ExportConfig, skip=("prepared",))
    config = config_from_args(parser.parse_args(argv), ExportConfig)
    result = export(config)
    tokens = sum(f.get("tokens", 0) for f in result.files.values())
    print(f"exported {config.prepared} as {config.format}: {tokens:,} tokens in {result.seconds:.1f} s -> "
          f"{config.output}")
    for name, f in sorted(result.files.items()):
        print(f"{f['bytes']:>14,}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
