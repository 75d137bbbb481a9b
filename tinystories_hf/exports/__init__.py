"""`tinystories-export`: a prepared folder as the token files the trainers people already run read.

    tinystories-export ts --format nanogpt --output nanoGPT/data/tinystories   # train.bin, val.bin, meta.pkl
    tinystories-export ts --format llama2c --output llama2.c/data              # tok{N}/data*.bin, tok{N}.model
    tinystories-export ts --format llmc --output tinystories                   # TinyStories_val_000000.bin ...
    tinystories-export ts --format megatron --output megatron                  # TinyStories_train_text_document.*

One module per format, as datasets' `packaged_modules`: `nanogpt.py` (karpathy/nanoGPT's `prepare.py` layout:
each story's ids, then EOS), `llama2c.py` (karpathy/llama2.c's `tinystories.py pretokenize`: BOS, then each
story's ids, in `tok{N}` shards), `llmc.py` (karpathy/llm.c's and modded-nanogpt's shards: a 1,024-byte
header, EOT then each story's ids) and `megatron.py` (Megatron-LM's indexed dataset: `.bin` + `.idx`, each
story's ids then EOD). Each gives its plan of files (which stories go where), its frame (the separator and
its side), its writer and the extra files (`meta.pkl`, `tok{N}.model`); this module runs them the same way.

The folder is read once (`snapshot`: checked, its Arrow files hashed against the recorded sha256 and read
from the same open files); the ids are read through the memory mapping, a window of `frames.WINDOW_TOKENS` at
a time, each checked against the vocabulary, and written in chunks (memory stays flat at any corpus size).
The files are written to a staging folder and put in place whole, one writer at a time, as entries of the
output folder that leave the user's other files there untouched (`placement`). `export_info.json` records
what was exported: the folder's vocabulary sha256, split fingerprints and data files' sha256 (as read at the
start), the format's frame and dtype, and each file's tokens, bytes and sha256.
"""
import dataclasses
import hashlib
import json
import posixpath
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import CommandParser, add_config_arguments, config_from_args, option
from ..errors import TinyStoriesError, check_int, flag
from ..store.folder import RECREATE
from ..supervision import api_errors, cli_errors, doing, offers
from ..tokenize.backdoor.plant import BACKDOOR_INFO
from ..utils.mapped_pages import PageReleaser
from .frames import framed, story_windows
from .placement import Placement
from .snapshot import read_snapshot

FORMATS = ("nanogpt", "llama2c", "llmc", "megatron")
EXPORT_INFO = "export_info.json"
MODEL_DESCS = ("gpt-2", "llama-3")
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass
class ExportConfig:
    """Options of `export()` and of `tinystories-export` (`--help` shows the defaults); `prepared` is the
    positional DIR.

    Example:
        >>> ExportConfig(prepared="ts", format="llama2c", output="data").max_seq_len
        256
        >>> ExportConfig(prepared="ts", format="llmc", output="shards").shard_tokens
        100000000
    """

    prepared: str = option("tinystories_prepared", "prepared folder to export (tinystories-prepare's output)")
    format: str = option("nanogpt", "nanogpt (train.bin, val.bin, meta.pkl), llama2c (tok{N}/ shards, tok{N}.model), "
                         "llmc (llm.c / modded-nanogpt .bin shards with a header) or megatron (Megatron-LM's "
                         ".bin + .idx per split)")
    output: str = option("tinystories_export", "folder to write into: nanoGPT's data/<dataset>, llama2.c's data/, or "
                         "any folder; the export replaces only the files it writes there")
    shard_stories: int = option(100_000, "llama2c: train stories per shard (llama2.c's own shards hold ~100K)")
    max_seq_len: int = option(256, "llama2c: the max_seq_len you train with (llama2.c's default): every shard "
                              "must hold 2 x max_seq_len tokens or more, or PretokDataset stops")
    shard_tokens: int = option(100_000_000, "llmc: most tokens per shard, whole stories, shards of nearly equal "
                               "size (llm.c's fineweb.py shards hold 10^8; under 2^31)")
    model_desc: str = option("gpt-2", "llmc: the header, as llm.c's -m/--model_desc: gpt-2 (uint16, magic "
                             "20240520: llm.c's train_gpt2.c/.cu/.py and modded-nanogpt read only this) or "
                             "llama-3 (uint32, magic 20240801: llm.c's train_llama3.py)")
    name: str = option("TinyStories", "llmc, megatron: the files' name prefix ({name}_val_000000.bin, "
                       "{name}_train_text_document.bin)")
    overwrite: bool = option(False, "replace the files of an earlier export in the output folder")

    def validate(self) -> None:
        from ..config import check_types

        check_types(self)
        if self.format not in FORMATS:
            raise TinyStoriesError(f"{flag('format', self.format)} is not one of {', '.join(FORMATS)}")
        check_int("shard_stories", self.shard_stories, low=1)
        check_int("max_seq_len", self.max_seq_len, low=1)
        check_int("shard_tokens", self.shard_tokens, low=1, high=2**31 - 1)
        if self.model_desc not in MODEL_DESCS:
            raise TinyStoriesError(f"{flag('model_desc', self.model_desc)} is not one of {', '.join(MODEL_DESCS)}")
        if not NAME.fullmatch(self.name):
            raise TinyStoriesError(f"{flag('name', self.name)} is not a plain file name (letters, digits, '_', '.', "
                                   "'-', not starting with '.' or '-')")


@dataclass
class ExportResult:
    """What `export()` wrote: the output folder, every file (relative to it) with its tokens, bytes and
    sha256, `export_info.json`'s content and the seconds taken."""

    output: Path
    files: dict
    info: dict
    seconds: float


def _progress(total: int, what: str):
    from datasets.utils.tqdm import tqdm

    return tqdm(total=total, desc=what, unit=" tokens", unit_scale=True)


def _module(name: str):
    from . import llama2c, llmc, megatron, nanogpt

    return {"nanogpt": nanogpt, "llama2c": llama2c, "llmc": llmc, "megatron": megatron}[name]


def _entries(names: list, record: str) -> list:
    """The top-level entries of `names` (paths relative to the output), the one holding `record` last."""
    tops = list(dict.fromkeys(name.split("/")[0] for name in names))
    carrier = record.split("/")[0]
    return [top for top in tops if top != carrier] + [carrier]


def _check_names(names: list, prepared: Path) -> None:
    """Every file name stays inside the output and no two are one file (also on a case-insensitive disk):
    split names are checked where they are read, this holds whatever a format builds from them."""
    seen = {}
    for name in names:
        parts = name.split("/")
        if not all(NAME.fullmatch(part) for part in parts):
            raise TinyStoriesError(f"{prepared}: the export would write {name!r}, not a plain file name inside the "
                                   f"output; {RECREATE}")
        if name.casefold() in seen:
            raise TinyStoriesError(f"{prepared}: the export would write {name!r} twice (also as "
                                   f"{seen[name.casefold()]!r}); rename one of the splits, {RECREATE}")
        seen[name.casefold()] = name


@api_errors
def export(config: ExportConfig) -> ExportResult:
    """Write `config.prepared` in `config.format` into `config.output`; see `ExportConfig` and the module
    docstring.

    Raises a one-line `TinyStoriesError` for a damaged, altered or incomplete prepared folder (the checks of
    `load_prepared`, an Arrow file differing from its recorded sha256, an id outside the vocabulary, a split
    name that is not plain), a split the format needs that the folder lacks or that kept no story, two splits
    that would share a file, a vocabulary the format cannot hold, a file in the way that no export wrote, an
    earlier export without `overwrite`, and the machine's faults (no space...), and `KeyboardInterrupt` on
    Ctrl-C: the owned files are then the previous export's, whole, or absent.

    Example:
        >>> export(ExportConfig(prepared="ts", format="nanogpt", output="nanoGPT/data/ts"))  # doctest: +SKIP
    """
    offers(f.name for f in dataclasses.fields(config))
    config.validate()
    started = time.perf_counter()
    doing(f"reading {config.prepared}")
    snapshot = read_snapshot(config.prepared)
    tokenizer, module = snapshot.tokenizer, _module(config.format)
    module.check_vocabulary(tokenizer, config)
    plan = module.plan(snapshot.splits, tokenizer, config)  # [(name, split, first row, end row)], checked
    layout, extra = module.layout(tokenizer, config), module.extra_files(tokenizer, snapshot.path)
    if "backdoor" in snapshot.info:  # a backdoored folder's record goes with its ids, beside export_info.json
        extra[posixpath.join(posixpath.dirname(layout["record"]), BACKDOOR_INFO)] = backdoor_record(snapshot)
    names = [f for name, *_ in plan for f in module.files(name)] + list(extra)
    _check_names(names + [layout["record"]], snapshot.path)
    place = Placement(config.output, anchor=layout["anchor"], record=layout["record"])
    place.check(snapshot.path)
    entries = _entries(names, layout["record"])

    def same(entry: str) -> bool:  # llama2.c's own tok{N}.model, identical to the one written
        path = place.output / entry
        return entry in extra and path.is_file() and not path.is_symlink() and path.read_bytes() == extra[entry]

    place.lock()
    place.check_entries(entries, overwrite=config.overwrite, same=same)
    separator, before = module.frame(tokenizer)
    fix = (f"the folder was altered or damaged: run tinystories-validate {snapshot.path} to check it, then "
           f"{RECREATE}")
    counts = [(end - first, int(snapshot.splits[split].lengths[first:end].sum()) + end - first)
              for _, split, first, end in plan]  # (stories, tokens with separators) per file
    files = {}
    with place.staged() as root, _progress(sum(t for _, t in counts), f"export {config.format}") as bar:
        releaser = PageReleaser()
        for (name, split, first, end), (stories, tokens) in zip(plan, counts):
            writer = module.writer(root, name, tokens=tokens, stories=stories, tokenizer=tokenizer, config=config)
            try:
                for lengths, values in story_windows(snapshot.splits[split].parts, first, end, fix=fix,
                                                     vocab_size=tokenizer.vocab_size, releaser=releaser):
                    writer.write(lengths, framed(lengths, values, separator, before=before, dtype=writer.dtype))
                    bar.update(len(values) + len(lengths))
            except BaseException:
                writer.abort()
                raise
            files.update(writer.close())
        for name, data in extra.items():
            (root / name).write_bytes(data)
            files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        empty = {split: snapshot.info["splits"][split].get("skipped_empty", 0) for split in
                 dict.fromkeys(split for _, split, *_ in plan)}
        export_info = {"format": config.format, "prepared": snapshot.identity, "vocab_size": tokenizer.vocab_size,
                       "separator_id": separator,
                       "separator": f"before each story ({'BOS' if separator == tokenizer.bos_id else 'EOS'})"
                       if before else "after each story (EOS)", **module.describe(tokenizer, config),
                       "empty_stories_not_exported": empty, "files": dict(sorted(files.items()))}
        (root / layout["record"]).parent.mkdir(parents=True, exist_ok=True)
        (root / layout["record"]).write_text(json.dumps(export_info, indent=2) + "\n", encoding="utf-8")
        place.check_entries(entries, overwrite=config.overwrite, same=same)  # nothing appeared meanwhile
        place.commit(entries)
    return ExportResult(output=place.output, files=files, info=export_info, seconds=time.perf_counter() - started)


def backdoor_record(snapshot) -> bytes:
    """`backdoor.json` of a backdoored prepared folder, as its sha256 in `prepare_info.json` records it."""
    source = snapshot.path / BACKDOOR_INFO
    data = source.read_bytes() if source.is_file() else None
    if data is None or hashlib.sha256(data).hexdigest() != snapshot.info.get("data_files", {}).get(BACKDOOR_INFO):
        raise TinyStoriesError(f"{source}: missing or differs from the sha256 in prepare_info.json; {RECREATE}")
    return data


@cli_errors
def main(argv=None) -> int:
    parser = CommandParser(prog="tinystories-export", description="Export a prepared folder as the token "
                           "files nanoGPT (train.bin, val.bin, meta.pkl), llama2.c (tok{N}/ shards, "
                           "tok{N}.model), llm.c / modded-nanogpt (header + uint16 shards) or Megatron-LM "
                           "(.bin + .idx) train on, unchanged.")
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
    empty = sum(result.info["empty_stories_not_exported"].values())
    if empty:
        print(f"note: the source's {empty:,} empty stories are not in the export (tinystories-prepare skips them); "
              "the peers' own scripts keep each as a lone separator (see the README's Exports section)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
