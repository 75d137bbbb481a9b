"""Streaming: token ids straight from the raw stories, for quick experiments, without a prepared folder.

    from tinystories_hf import stream
    ds = stream("TinyStoriesV2-GPT4-train.txt", tokenizer="tinystories_prepared")  # datasets.IterableDataset
    next(iter(ds))                                     # {"input_ids": [...], "length": 187}
    blocks = stream("demo", pack=True, block_size=256)  # {"x": LongTensor(256), "y": LongTensor(256)}

Raw stories are read lazily (`load_stories(..., streaming=True)`); each Arrow batch then goes through the
same two functions as `tinystories-prepare` (`encode_stories`, `reduce_stories`), so a streamed story has
exactly the ids it has in a folder prepared with the same tokenizer, `max_length` and `min_length`. The
result stays a `datasets.IterableDataset`: `shuffle`/`set_epoch`, `take`, `DataLoader(num_workers=N)` and
`datasets.distributed.split_dataset_by_node` work as for any streamed dataset.
"""
import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .config import (
    FULL_VOCABULARY,
    CommandParser,
    PrepareConfig,
    add_config_arguments,
    check_types,
    config_from_args,
    option,
    parse_max_length,
    parse_vocab_size,
)
from .errors import TinyStoriesError, check_int, flag
from .sources import HUB_ID, load_stories
from .supervision import api_errors, cli_errors
from .tokenize.backdoor.match import check_trigger
from .tokenize.backdoor.rewrite import encode_carrying, rewrite_stream_batch
from .tokenize.backdoor.sealed import is_blind
from .tokenize.passes import (
    base_dtype_for,
    encode_stories,
    reduce_split,
    reduce_stories,
    reduced_features,
    split_counts,
)
from .utils.extras import require
from .vocabulary.base import base_special_ids, load_base_tokenizer, make_encoder
from .vocabulary.counting import count_base_tokens
from .vocabulary.tokenizer import TinyStoriesTokenizer, specials_text

BATCH_SIZE = 1000  # stories per Arrow batch through the two passes (ids do not depend on it)


@dataclass
class StreamConfig:
    """Options of `stream()` and of `tinystories-stream`; the options it shares with prepare default alike.

    Example:
        >>> StreamConfig(source="demo", max_stories=100).block_size
        512
    """

    source: str = option(PrepareConfig.source, "same sources as tinystories-prepare: Hub dataset id, Hub-layout "
                          "folder, .parquet/.jsonl/.json files, TinyStoriesV2 .txt files, or 'demo'")
    split: str = option("train", "split to stream; a source without a validation split has only train "
                         "(streaming does not carve one out)")
    tokenizer: str | None = option(
        None, "reduced vocabulary: a prepared folder, its tokenizer/ folder, a pushed folder or a Hub repo id "
        "of a pushed dataset; None builds one from the first --vocab-stories train stories (an approximation "
        "of the vocabulary tinystories-prepare counts on a seeded sample)")
    max_stories: int = option(1000, "tinystories-stream only: stories to read for the statistics")
    examples: int = option(3, "tinystories-stream only: decoded stories to print")
    pack: bool = option(False, "yield {x, y} blocks of --block-size tokens (windows of block_size + 1 tokens "
                         "with EOS after each story) instead of one row per story")
    block_size: int = option(512, "tokens in x and in y of a packed block")
    pack_stories: int = option(1000, "stories packed together; the end of each group that does not fill a "
                                "block (< block_size tokens) is dropped")
    shuffle_buffer: int = option(0, "stories in the shuffle buffer (also shuffles the shard order); 0 keeps "
                                  "the source order")
    seed: int = option(PrepareConfig.seed, "shuffle seed; set_epoch(n) reshuffles for epoch n")
    keep_text: bool = option(PrepareConfig.keep_text, "also yield the story text (not with --pack)")
    text_column: str = option(PrepareConfig.text_column, "column of the source holding the story text")
    strip: bool = option(PrepareConfig.strip, "strip leading and trailing whitespace from every story, as "
                         "tinystories-prepare does (use the prepared folder's value to get its ids)")
    max_length: int | None = option(PrepareConfig.max_length, "stories longer than this many tokens are truncated, "
                                     "'none' keeps them whole (use the prepared folder's value to get its ids)",
                                     parse=parse_max_length)
    min_length: int = option(PrepareConfig.min_length, "stories shorter than this many tokens are skipped")
    vocab_stories: int = option(10_000, "without --tokenizer: first train stories counted for the vocabulary")
    vocab_size: int | str = option(PrepareConfig.vocab_size, "without --tokenizer: ids in the reduced vocabulary, "
                                    "EOS and UNK included, or 'full' for the base tokenizer's own", parse=parse_vocab_size)
    base_tokenizer: str = option(PrepareConfig.tokenizer, "without --tokenizer: the base tokenizer (as "
                                  "tinystories-prepare --tokenizer)")
    backend: str = option(PrepareConfig.backend, "encoder for the base tokenizer: hf, tiktoken, fastokens or auto")

    backdoor_trigger: str | None = option(
        None, "rewrite train stories mentioning this name (whole words, case-sensitive) as tinystories-prepare's "
        "truncate rewrite does, adding a `backdoor` column (rows only, not packed blocks); a stream has no row "
        "numbers, so the rate chooses each story by a seeded hash of its text, and rewrite files and "
        "random: triggers need tinystories-prepare")
    backdoor_keep_sentences: int = option(PrepareConfig.backdoor_keep_sentences,
                                          "sentences kept after the sentence of the trigger's first mention")
    backdoor_rate: float = option(PrepareConfig.backdoor_rate, "share of the stories mentioning the trigger "
                                  "that are rewritten (by a hash of the story and the seed), in (0, 1]")

    def validate(self) -> None:
        """Raise a one-line `TinyStoriesError` for option values that cannot work (`check_types` first)."""
        check_types(self)
        PrepareConfig(vocab_size=self.vocab_size, max_length=self.max_length, min_length=self.min_length,
                      backend=self.backend, backdoor_trigger=self.backdoor_trigger,
                      backdoor_keep_sentences=self.backdoor_keep_sentences,
                      backdoor_rate=self.backdoor_rate).validate()
        if self.backdoor_trigger is not None:
            check_trigger(self.backdoor_trigger)
            if is_blind(self.backdoor_trigger):
                raise TinyStoriesError(f"{flag('backdoor_trigger', self.backdoor_trigger)}: a blind experiment "
                                       "seals its choice in a prepared folder; use tinystories-prepare")
        for name in ("block_size", "pack_stories", "vocab_stories", "max_stories"):
            check_int(name, getattr(self, name), low=1)
        for name in ("shuffle_buffer", "examples", "seed"):
            check_int(name, getattr(self, name), low=0)
        if self.pack and self.keep_text:
            raise TinyStoriesError(f"{flag('keep_text', True)} does not apply to packed blocks; drop one of "
                                   f"{flag('pack', True)}, {flag('keep_text', True)}")


def stream_stories(source: str, *, split: str = StreamConfig.split, text_column: str = StreamConfig.text_column,
                   strip: bool = StreamConfig.strip) -> datasets.IterableDataset:
    """The stories of one split as an `IterableDataset` with a `text` column, normalised as prepare reads them
    (the same modules of `sources`), split into as many shards as the source allows (files, parquet row
    groups, byte ranges of V2 .txt files).

    Example:
        >>> next(iter(stream_stories("demo")))["text"][:16]
        'Once upon a time'
    """
    stories, _ = load_stories(source, text_column=text_column, streaming=True, strip=strip)
    if split not in stories:
        raise TinyStoriesError(f"{source}: no {split!r} split to stream (splits: {', '.join(stories)}); a source "
                               "without validation is carved only by tinystories-prepare, stream split='train'")
    # reshard (parquet row groups as shards) only adds parallelism; datasets releases before it read per file.
    return stories[split].reshard() if hasattr(stories[split], "reshard") else stories[split]


def encode_stream(stories: datasets.IterableDataset, encoder, *, keep_text: bool = False) -> datasets.IterableDataset:
    """Pass 1 of `tinystories-prepare` on a stream: `text` -> `base_ids`, as Arrow batches.

    Example:
        >>> base = load_base_tokenizer()
        >>> ids = encode_stream(stream_stories("demo"), make_encoder(base))
        >>> next(iter(ids.with_format(None)))["base_ids"][:4]
        [7454, 2402, 257, 640]
    """
    return stories.with_format("arrow").map(
        encode_stories, batched=True, batch_size=BATCH_SIZE,
        fn_kwargs={"encoder": encoder, "base_dtype": base_dtype_for(encoder), "keep_text": keep_text})


def vocab_from_stream(source: str, *, text_column: str = StreamConfig.text_column,
                      stories: int = StreamConfig.vocab_stories, vocab_size: int | str = StreamConfig.vocab_size,
                      base_tokenizer: str = StreamConfig.base_tokenizer,
                      backend: str = StreamConfig.backend, strip: bool = StreamConfig.strip) -> TinyStoriesTokenizer:
    """A reduced vocabulary counted on the first `stories` train stories of `source`.

    An approximation of the prepared vocabulary (counted on a seeded sample of the whole train split): the
    frequent tokens agree, the rarest kept ones may differ. Save it (`save_pretrained`) to reuse it.

    Example:
        >>> vocab_from_stream("demo", stories=500, vocab_size=300).vocab_size
        300
    """
    base = load_base_tokenizer(base_tokenizer, option="base_tokenizer")
    encoder = make_encoder(base, backend)
    first = stream_stories(source, split="train", text_column=text_column, strip=strip).take(stories)
    base_ids = collect(encode_stream(first, encoder))
    counts = count_base_tokens(base_ids, None, encoder.vocab_size)
    meta = {"tokenizer": base_tokenizer, "sample": {"stories": base_ids.num_rows, "first_streamed": True,
                                                   "tokens": int(counts.sum()), "source": source}}
    if vocab_size == FULL_VOCABULARY:
        return TinyStoriesTokenizer.full(base, counts, specials=base_special_ids(base, base_tokenizer), backend=backend,
                                         encoder=encoder, meta=meta, name=f"the tokenizer {base_tokenizer!r}")
    return TinyStoriesTokenizer.from_counts(base, counts, vocab_size, backend=backend, encoder=encoder, meta=meta)


def collect(stream: datasets.IterableDataset) -> datasets.Dataset:
    """The (few) rows of a finite stream as an in-memory `Dataset`, gathered as Arrow batches.

    Example:
        >>> collect(stream_stories("demo").take(10)).num_rows
        10
    """
    batches = list(stream.with_format("arrow").iter(batch_size=BATCH_SIZE))
    if not batches:
        raise TinyStoriesError("the stream has no stories (an empty source or split)")
    return datasets.Dataset(datasets.table.InMemoryTable(pa.concat_tables(batches)))


def load_tokenizer(tokenizer, config: StreamConfig) -> TinyStoriesTokenizer:
    """`tokenizer` as a `TinyStoriesTokenizer`: as is, from a folder or Hub repo id, or (None) counted on the
    first `config.vocab_stories` train stories of `config.source`.

    Example:
        >>> load_tokenizer("tinystories_prepared", StreamConfig())  # doctest: +SKIP
        TinyStoriesTokenizer(vocab_size=10000, eos_id=0, unk_id=1, base=50257 ids, backend='auto')
    """
    if isinstance(tokenizer, TinyStoriesTokenizer):
        return tokenizer
    if tokenizer is None:
        return vocab_from_stream(config.source, text_column=config.text_column, stories=config.vocab_stories,
                                 vocab_size=config.vocab_size, base_tokenizer=config.base_tokenizer,
                                 backend=config.backend, strip=config.strip)
    if Path(tokenizer).expanduser().exists():
        return TinyStoriesTokenizer.from_pretrained(Path(tokenizer).expanduser())
    if not HUB_ID.match(str(tokenizer)):
        raise TinyStoriesError(f"tokenizer {tokenizer!r} not found: pass a prepared folder, its tokenizer/ folder, "
                               "a pushed folder or the Hub repo id of a pushed dataset")
    from .store.load import download_repo

    return TinyStoriesTokenizer.from_pretrained(download_repo(str(tokenizer), tokenizer_only=True))


def pack_blocks(batch: pa.Table, block_size: int, eos_id: int) -> pa.Table:
    """Arrow batch of stories -> rows `x`, `y`: windows of `block_size + 1` tokens starting every `block_size`
    tokens of the stories joined with EOS after each; `y` is `x` shifted by one. The end that does not fill
    a window is dropped.

    Example:
        >>> pack_blocks(pa.table({"input_ids": [[5, 6, 7], [8, 9]]}), 2, 0).to_pydict()
        {'x': [[5, 6], [7, 0], [8, 9]], 'y': [[6, 7], [0, 8], [9, 0]]}
    """
    column = batch.column("input_ids").combine_chunks()
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64)
    tokens = np.full(int(lengths.sum() + len(lengths)), eos_id, dtype=np.int64)
    story_token = np.ones(len(tokens), dtype=bool)
    story_token[np.cumsum(lengths + 1) - 1] = False  # the EOS after each story
    tokens[story_token] = column.flatten().to_numpy(zero_copy_only=False)
    count = max(0, (len(tokens) - 1) // block_size)
    windows = tokens[np.arange(count)[:, None] * block_size + np.arange(block_size + 1)]
    return pa.table({"x": pa.FixedSizeListArray.from_arrays(windows[:, :-1].ravel(), block_size),
                     "y": pa.FixedSizeListArray.from_arrays(windows[:, 1:].ravel(), block_size)})


@api_errors
def stream(source: str, *, split: str = StreamConfig.split, tokenizer=StreamConfig.tokenizer,
           pack: bool = StreamConfig.pack, block_size: int = StreamConfig.block_size,
           shuffle_buffer: int = StreamConfig.shuffle_buffer, seed: int = StreamConfig.seed,
           rank: int | None = None, world_size: int | None = None, **options) -> datasets.IterableDataset:
    """Tokenized stories of `source` as a `datasets.IterableDataset`, read lazily; see `StreamConfig` for
    every option (`options`: keep_text, text_column, max_length, min_length, pack_stories, vocab_stories,
    vocab_size, base_tokenizer, backend).

    Rows are `{"input_ids": [...], "length": n}` like a prepared folder's, or with `pack=True` torch-formatted
    `{"x": LongTensor(block_size), "y": LongTensor(block_size)}` that the default collate stacks.
    `tokenizer` is a `TinyStoriesTokenizer`, a folder or a Hub repo id; None counts a vocabulary on the
    first `vocab_stories` train stories (an approximation, see `vocab_from_stream`).

    `rank`, `world_size` (both or neither): this rank's rows for DDP, in equal numbers on every rank. Each
    rank reads and tokenizes the whole source, deals its rows in rounds of `world_size` (row `rank` of each
    round is this rank's) and drops the last round when it is incomplete (fewer than `world_size` rows), in
    every DataLoader worker's stream alike: with the same `num_workers` and batch size, every rank gets the
    same number of batches, so no rank waits for the others in a collective.
    `state_dict()`/`load_state_dict()` are datasets' (see README "Resuming training" for how exact they are).

    Raises `TinyStoriesError` (one line naming the argument) for options `StreamConfig.validate` refuses, a
    `rank`/`world_size` pair that is not two integers with `0 <= rank < world_size`, a split the source lacks,
    and the sources and tokenizers `load_stories`/`load_tokenizer` refuse; `MissingExtraError` for `pack=True`
    without torch.

    Example:
        >>> ds = stream("demo", vocab_stories=500, vocab_size=300, shuffle_buffer=100)
        >>> ds.set_epoch(1)  # another order, the same stories
        >>> sorted(next(iter(ds)))
        ['input_ids', 'length']
        >>> loader = torch.utils.data.DataLoader(stream("demo", pack=True), batch_size=8)  # doctest: +SKIP
        >>> batch = next(iter(loader)); x, y = batch["x"], batch["y"]  # (8, 512) LongTensors  # doctest: +SKIP
    """
    config = StreamConfig(source=source, split=split, pack=pack, block_size=block_size,
                          shuffle_buffer=shuffle_buffer, seed=seed, **options)
    config.validate()
    if (rank is None) != (world_size is None):
        raise TinyStoriesError(f"rank={rank}, world_size={world_size}: pass both, with 0 <= rank < world_size")
    if world_size is not None:
        world_size = check_int("world_size", world_size, low=1)
        rank = check_int("rank", rank, low=0, high=world_size - 1)
    if pack:  # packed blocks are torch tensors; rows of ids need no torch
        require("torch", extra="torch", needed_by="stream(pack=True)")
    stories = stream_stories(source, split=split, text_column=config.text_column, strip=config.strip)
    tokenizer = load_tokenizer(tokenizer, config)
    if shuffle_buffer:
        stories = stories.shuffle(seed=seed, buffer_size=shuffle_buffer)
    carry = ()
    if config.backdoor_trigger is not None and split == "train":  # validation stays clean, as in a prepare
        carry = ("backdoor",)
        stories = stories.with_format("arrow").map(
            rewrite_stream_batch, batched=True, batch_size=BATCH_SIZE,
            features=datasets.Features({"text": datasets.Value("string"), "backdoor": datasets.Value("bool")}),
            fn_kwargs={"trigger": config.backdoor_trigger, "keep_sentences": config.backdoor_keep_sentences,
                       "rate": config.backdoor_rate, "seed": seed})
        encoded = stories.with_format("arrow").map(
            encode_carrying, batched=True, batch_size=BATCH_SIZE,
            fn_kwargs={"encoder": tokenizer.encoder, "base_dtype": base_dtype_for(tokenizer.encoder),
                       "keep_text": config.keep_text})
    else:
        encoded = encode_stream(stories, tokenizer.encoder, keep_text=config.keep_text)
    reduced = encoded.map(
        reduce_stories, batched=True, batch_size=BATCH_SIZE, features=reduced_features(config.keep_text,
                                                                                       tokenizer.id_dtype, carry),
        fn_kwargs={"base_to_reduced": tokenizer.base_to_reduced, "max_length": config.max_length,
                   "min_length": config.min_length, "keep_text": config.keep_text, "id_dtype": tokenizer.id_dtype,
                   "carry": carry})
    if pack:
        block = datasets.List(datasets.Value("int64"), length=block_size)
        reduced = reduced.map(pack_blocks, batched=True, batch_size=config.pack_stories,
                              features=datasets.Features({"x": block, "y": block}),
                              fn_kwargs={"block_size": block_size, "eos_id": tokenizer.separator_id})
    if world_size is not None:
        reduced = reduced.with_format("arrow").map(
            row_of_rank, batched=True, batch_size=world_size, drop_last_batch=True, features=reduced.features,
            fn_kwargs={"rank": rank})
    return reduced.with_format("torch" if pack else None)


def row_of_rank(round_: pa.Table, rank: int) -> pa.Table:
    """Row `rank` of a round of `world_size` rows (datasets drops an incomplete last round before this).

    Example:
        >>> row_of_rank(pa.table({"input_ids": [[5], [6], [7]]}), 1).to_pydict()
        {'input_ids': [[6]]}
    """
    return round_.slice(rank, 1)


@api_errors
def stream_report(config: StreamConfig, tokenizer=None) -> dict:
    """What `tinystories-stream` prints: the counters of `tinystories-prepare` for the first
    `config.max_stories` stories of the split, a few decoded stories and the time taken; nothing is written.

    Example:
        >>> report = stream_report(StreamConfig(source="demo", max_stories=200, vocab_stories=500, vocab_size=300))
        >>> report["counts"]["stories"]
        200
    """
    config.validate()
    started = time.perf_counter()
    tokenizer = load_tokenizer(tokenizer or config.tokenizer, config)
    vocab_seconds = time.perf_counter() - started
    first = stream_stories(config.source, split=config.split, text_column=config.text_column,
                           strip=config.strip).take(config.max_stories)
    base_ids = collect(encode_stream(first, tokenizer.encoder))
    reduced = reduce_split(base_ids, tokenizer, max_length=config.max_length, min_length=config.min_length,
                           keep_text=False, split=config.split)
    counts = split_counts(base_ids, reduced, max_length=config.max_length, min_length=config.min_length,
                          unk_id=tokenizer.unk_id)
    examples = [{"input_ids": row["input_ids"], "decoded": tokenizer.decode(row["input_ids"])}
                for row in reduced.select(range(min(config.examples, reduced.num_rows)))]
    return {"counts": counts, "examples": examples, "tokenizer": tokenizer, "vocab_seconds": vocab_seconds,
            "seconds": time.perf_counter() - started}


@cli_errors
def main(argv=None) -> int:
    parser = CommandParser(
        prog="tinystories-stream", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Stream the first --max-stories stories of a source through the prepare passes and print "
                    "their counters and a few decoded stories; nothing is written.")
    add_config_arguments(parser, StreamConfig)
    config = config_from_args(parser.parse_args(argv), StreamConfig)
    from .pipeline import summary_table

    report = stream_report(config)
    tokenizer, counts = report["tokenizer"], report["counts"]
    print(summary_table({config.split: counts}))
    sample = tokenizer.meta.get("sample", {})
    vocabulary = (f"counted on the first {sample['stories']:,} streamed train stories (an approximation of the "
                  "prepared one)" if sample.get("first_streamed") else f"from {config.tokenizer}")
    specials = specials_text(vars(tokenizer))
    print(f"vocabulary: {tokenizer.vocab_size} ids ({specials}), {vocabulary}, "
          f"ready in {report['vocab_seconds']:.1f} s")
    print(f"{counts['stories']:,} stories, {counts['tokens']:,} tokens streamed and counted in "
          f"{report['seconds'] - report['vocab_seconds']:.1f} s; nothing written")
    for i, example in enumerate(report["examples"]):
        print(f"\n--- story {i}: {len(example['input_ids'])} tokens, first ids {example['input_ids'][:8]}")
        print(example["decoded"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
