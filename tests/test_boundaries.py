"""Boundaries a user relies on, each against an independent reference: stories of exactly `min_length`,
`max_length` and `block_size` tokens, a separator other than EOS = 0, `stream()` against ids computed from the
saved vocabulary table and transformers' own GPT-2 tokenizer (not against `prepare()`, which shares its
functions), and the tokenize cache never reused across base tokenizers."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Tokenizer

from tinystories_hf import PackingCollator, PrepareConfig, TinyStoriesDataset, TinyStoriesDatasetPacked, prepare, stream
from tinystories_hf.vocabulary.gpt2 import gpt2_bpe_files

MIN, MAX = 10, 20
# Words that are one GPT-2 token each (checked by `reference_ids` below): a story of n tokens is "Once" + n-1 of them.
WORDS = [" the", " cat", " dog", " sat", " on", " mat", " red", " big", " sun", " day", " ran", " park", " and",
         " a", " he", " she", " it", " was", " happy", " tree", " ball", " bird", " fish", " box"]
# Token counts around both limits, in both splits; the 30-token stories give packing and the vocabulary bulk.
TRAIN_LENGTHS = [MIN - 1, MIN, MIN + 1, MAX - 1, MAX, MAX + 1, 1, 30, 30, 30, 30, MAX, MIN]
VALIDATION_LENGTHS = [MIN, MAX, MAX + 1, MIN - 1, 30]


def make_story(n: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    return "Once" + "".join(WORDS[i] for i in rng.integers(0, len(WORDS), n - 1))


@pytest.fixture(scope="module")
def gpt2():
    files = gpt2_bpe_files()
    return GPT2Tokenizer(vocab=str(files["encoder.json"]), merges=str(files["vocab.bpe"]))


@pytest.fixture(scope="module")
def stories(gpt2):
    made = {"train": [make_story(n, i) for i, n in enumerate(TRAIN_LENGTHS)],
            "validation": [make_story(n, 100 + i) for i, n in enumerate(VALIDATION_LENGTHS)]}
    for split, lengths in (("train", TRAIN_LENGTHS), ("validation", VALIDATION_LENGTHS)):
        assert [len(ids) for ids in gpt2(made[split])["input_ids"]] == lengths  # the data is what we think
    return made


@pytest.fixture(scope="module")
def source(stories, tmp_path_factory):
    """The stories in the Hub repository layout (explicit splits: no carve-out)."""
    root = tmp_path_factory.mktemp("boundary-source")
    (root / "data").mkdir()
    for split, texts in stories.items():
        pq.write_table(pa.table({"text": texts}), root / "data" / f"{split}-00000-of-00001.parquet")
    return root


@pytest.fixture(scope="module")
def prepared(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("boundary-prepared") / "p"
    return prepare(PrepareConfig(source=str(source), output=str(out), min_length=MIN, max_length=MAX,
                                 vocab_size=20, num_proc=1))


def reference_ids(gpt2, folder, texts, *, min_length=MIN, max_length=MAX) -> list:
    """Reduced ids without the package: GPT-2 ids from transformers, mapped through the saved JSON table
    (reduced id -> base id; any other token is UNK), truncated, short stories dropped."""
    table = json.loads((folder / "tokenizer" / "tinystories_vocab.json").read_text())
    reduced = {base: i for i, base in enumerate(table["base_ids"]) if i >= 2}
    rows = []
    for base in gpt2(list(texts))["input_ids"]:
        if len(base) >= min_length:
            rows.append([reduced.get(b, table["unk_id"]) for b in base[:max_length]])
    return rows


def test_stories_of_exactly_min_and_max_length_are_kept_whole(prepared, stories, gpt2):
    for split, lengths in (("train", TRAIN_LENGTHS), ("validation", VALIDATION_LENGTHS)):
        c = prepared.info["splits"][split]
        rows = prepared.dataset[split]
        expected = reference_ids(gpt2, prepared.output, stories[split])
        assert list(rows["input_ids"]) == expected
        assert list(rows["length"]) == [min(n, MAX) for n in lengths if n >= MIN]
        assert c["kept"] == sum(n >= MIN for n in lengths)  # exactly MIN tokens is kept
        assert c["skipped_short"] == sum(0 < n < MIN for n in lengths)
        assert c["truncated"] == sum(n > MAX for n in lengths)  # exactly MAX tokens is not truncated
        assert c["tokens"] == sum(min(n, MAX) for n in lengths if n >= MIN)


def test_stream_matches_an_independent_reference(prepared, source, stories, gpt2):
    folder = prepared.output
    for split in ("train", "validation"):
        rows = list(stream(str(source), split=split, tokenizer=str(folder), min_length=MIN, max_length=MAX))
        expected = reference_ids(gpt2, folder, stories[split])
        assert [r["input_ids"] for r in rows] == expected
        assert [r["length"] for r in rows] == [len(ids) for ids in expected]

    # Packed: windows of block + 1 tokens every block tokens of "story EOS story EOS ...".
    block, eos = 8, prepared.tokenizer.eos_id
    joined = [t for ids in reference_ids(gpt2, folder, stories["train"]) for t in ids + [eos]]
    windows = [joined[i * block: i * block + block + 1] for i in range((len(joined) - 1) // block)]
    packed = list(stream(str(source), tokenizer=str(folder), pack=True, block_size=block, min_length=MIN,
                         max_length=MAX))
    assert [(r["x"].tolist(), r["y"].tolist()) for r in packed] == [(w[:-1], w[1:]) for w in windows]


def test_packed_dataset_uses_the_separator_given(prepared, gpt2, stories):
    separator, block = 7, 16
    assert separator != prepared.tokenizer.eos_id
    joined = [t for ids in reference_ids(gpt2, prepared.output, stories["train"]) for t in ids + [separator]]
    packed = TinyStoriesDatasetPacked(prepared.output, split="train", block_size=block, separator=separator)
    assert len(packed) == (len(joined) - 1) // block
    for i in range(len(packed)):
        x, y = packed[i]
        assert x.tolist() == joined[i * block: i * block + block]
        assert y.tolist() == joined[i * block + 1: i * block + block + 1]


@pytest.mark.parametrize("block_size", [MAX - 1, MAX, MAX + 1])
def test_story_item_of_exactly_block_size_tokens_ends_with_eos(prepared, block_size):
    """Validation holds a story of exactly MAX tokens: with block_size == MAX its EOS is the last target."""
    eos = prepared.tokenizer.eos_id
    dataset = TinyStoriesDataset(prepared.output, split="validation", block_size=block_size)
    for k, story in enumerate(prepared.dataset["validation"]["input_ids"]):
        sequence = (story + [eos])[: block_size + 1]
        x, y = dataset[k]
        assert x.tolist() == sequence[:block_size] + [eos] * (block_size - len(sequence[:block_size]))
        assert y.tolist() == sequence[1:] + [-1] * (block_size - len(sequence[1:]))
        if len(story) == block_size:
            assert y[-1].item() == eos and x[-1].item() == story[-1]


def test_packing_collator_uses_the_separator_given():
    stories, separator = [[5, 6, 7], [8, 9], [10, 11, 12, 13]], 3
    joined = [t for s in stories for t in s + [separator]]  # 12 tokens
    x, y = PackingCollator(separator=separator, block_size=4)(stories)
    padded = joined + [separator] * (3 * 4 + 1 - len(joined))
    assert x.flatten().tolist() == padded[:-1]
    assert y.flatten().tolist() == joined[1:] + [-1]
    batch = PackingCollator(separator=separator, block_size=5, return_dict=True)(stories)
    assert batch["input_ids"].flatten().tolist() == joined + [separator] * 3
    assert batch["labels"].flatten().tolist() == joined + [-100] * 3
    assert batch["input_ids"].dtype == torch.int64


def word_level_tokenizer(folder, words) -> str:
    """Another base tokenizer (one id per word), saved as tokenizer.json: hf backend, ids unlike GPT-2's."""
    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(sorted(words))}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    folder.mkdir()
    tokenizer.save(str(folder / "tokenizer.json"))
    return str(folder)


def test_tokenize_cache_is_never_reused_across_base_tokenizers(source, stories, tmp_path):
    """Same source and cache folder, two base tokenizers: each output holds its own tokenizer's ids."""
    words = {w.strip() for w in WORDS} | {"Once"}
    other = word_level_tokenizer(tmp_path / "word-level", words)
    config = PrepareConfig(source=str(source), output=str(tmp_path / "gpt2"), min_length=MIN, max_length=MAX,
                           vocab_size=20, num_proc=1, cache_dir=str(tmp_path / "cache"))
    prepare(config)
    result = prepare(PrepareConfig(**{**config.__dict__, "output": str(tmp_path / "words"), "tokenizer": other}))
    table = json.loads((result.output / "tokenizer" / "tinystories_vocab.json").read_text())
    reduced = {base: i for i, base in enumerate(table["base_ids"]) if i >= 2}
    words_tokenizer = Tokenizer.from_file(str(tmp_path / "word-level" / "tokenizer.json"))
    for split in ("train", "validation"):
        base = [words_tokenizer.encode(text).ids for text in stories[split]]
        expected = [[reduced.get(b, 1) for b in ids[:MAX]] for ids in base if len(ids) >= MIN]
        assert list(result.dataset[split]["input_ids"]) == expected
