"""Inputs of the training side that are not what a caller meant: each is one `TinyStoriesError` line naming the
argument as the caller typed it, never a silent round (2.5 -> 2, True -> 1), a wrapped index or an error from
inside torch or the model. Stories at the packing boundaries are in tests/test_boundaries.py."""
import re

import datasets
import numpy as np
import pytest

from tinystories_hf import (
    PackingCollator,
    TinyStoriesDataset,
    TinyStoriesDatasetPacked,
    TinyStoriesError,
    TinyStoriesSampler,
    distributed_rank,
    stream,
)
from tinystories_hf.stream import main as stream_main


@pytest.fixture(scope="module")
def tokens(prepared_demo):
    """A three-story Dataset of uint16 ids and the demo folder's tokenizer (500 ids)."""
    rows = [[5, 6, 7, 8], [9, 10, 11, 12, 13], [14, 15]]
    features = datasets.Features({"input_ids": datasets.List(datasets.Value("uint16"))})
    return datasets.Dataset.from_dict({"input_ids": rows}, features=features), prepared_demo.tokenizer


@pytest.mark.parametrize("value, message", [
    (2.5, "block_size=2.5 must be an integer"), (True, "block_size=True must be an integer"),
    ("4", "block_size='4' must be an integer"), (0, "block_size=0 must be at least 1")])
def test_block_size_that_is_not_a_positive_integer(tokens, value, message):
    data, tokenizer = tokens
    for make in (lambda: TinyStoriesDataset(data, tokenizer=tokenizer, block_size=value),
                 lambda: TinyStoriesDatasetPacked(data, tokenizer=tokenizer, block_size=value),
                 lambda: PackingCollator(separator=0, block_size=value)):
        with pytest.raises(TinyStoriesError, match=f"^{message}$".replace("(", r"\(").replace(")", r"\)")):
            make()


def test_items_are_indexed_by_integers_as_a_list_is(tokens):
    data, tokenizer = tokens
    stories = TinyStoriesDataset(data, tokenizer=tokenizer, block_size=4)
    assert stories[np.int64(1)][0].tolist() == [9, 10, 11, 12] and stories[-1][0].tolist() == [14, 15, 0, 0]
    with pytest.raises(TypeError):
        stories[1.5]  # not item 1
    with pytest.raises(IndexError):
        stories[3]


def test_separator_is_an_id_of_the_vocabulary_or_one_line(tokens):
    data, tokenizer = tokens
    assert tokenizer.vocab_size == 500
    cases = [(3.5, "separator=3.5 must be an integer"), (True, "separator=True must be an integer"),
             (500, "separator 500 is not an id of the 500-id vocabulary"),
             (-1, "separator -1 is not an id of the 500-id vocabulary")]
    for separator, message in cases:
        with pytest.raises(TinyStoriesError) as failure:
            TinyStoriesDatasetPacked(data, tokenizer=tokenizer, block_size=2, separator=separator)
        assert str(failure.value) == message
    # the collator knows the vocabulary only when told: GPT-2's EOS 50256 in a 500-id model is then an error
    with pytest.raises(TinyStoriesError, match=r"^separator=50256 is not an id of the 500-id vocabulary"):
        PackingCollator(separator=50256, vocab_size=500)
    for separator, message in [(0.0, "separator=0.0 must be an integer"), (-1, "separator=-1 must be at least 0"),
                               (None, ("PackingCollator needs separator= or tokenizer= (the prepared folder's "
                                        "tokenizer, whose separator_id it uses)"))]:
        with pytest.raises(TinyStoriesError, match=f"^{re.escape(message)}$"):
            PackingCollator(separator=separator)


def test_collator_examples_are_one_story_of_integer_ids_each():
    collate = PackingCollator(separator=0, block_size=4, vocab_size=10)
    x, y = collate([np.array([5, 6], dtype=np.uint16), [7]])  # arrays and lists of ids
    assert x.tolist() == [[5, 6, 0, 7]] and y.tolist() == [[6, 0, 7, 0]]
    bad = [([[[5, 6], [7, 8]]], "example 0 of the batch has shape (2, 2): each example is one story"),
           ([[5], [6.0, 7.5]], "example 1 of the batch holds float64 values, not integer token ids"),
           ([{"input_ids": [5, 10]}], "example 0 of the batch holds token id 10, outside [0, 10)"),
           ([[5, -1]], "example 0 of the batch holds token id -1, outside [0, 10)")]
    for batch, message in bad:
        with pytest.raises(TinyStoriesError) as failure:
            collate(batch)
        assert str(failure.value).startswith(message)
    with pytest.raises(TinyStoriesError, match="token id -1, outside"):
        PackingCollator(separator=0)([[5, -1]])  # negative ids are never ids, vocabulary known or not


def test_rank_world_size_and_seed_are_integers_in_range(tokens):
    data, _ = tokens
    cases = [((1.0, 2), "rank=1.0 must be an integer"), ((True, 2), "rank=True must be an integer"),
             ((2, 2), "rank=2 must be at most 1"), ((0, 0), "world_size=0 must be at least 1"),
             ((0, 2.0), "world_size=2.0 must be an integer")]
    for (rank, world_size), message in cases:
        with pytest.raises(TinyStoriesError, match=f"^{message}$"):
            distributed_rank(rank, world_size)
        with pytest.raises(TinyStoriesError, match=f"^{message}$"):
            stream("demo", rank=rank, world_size=world_size)
    with pytest.raises(TinyStoriesError, match=r"^seed=1\.5 must be an integer$"):
        TinyStoriesSampler(data, seed=1.5, rank=0, world_size=1)
    sampler = TinyStoriesSampler(data, rank=0, world_size=1)
    with pytest.raises(TinyStoriesError, match=r"^epoch=1\.5 must be an integer$"):  # was epoch 1
        sampler.set_epoch(1.5)
    next(iter(sampler))
    for samples, message in [(0.5, "samples=0.5 must be an integer"), (-1, "samples=-1 must be at least 0"),
                             (2, "samples=2, but this rank's current pass has handed out 1")]:
        with pytest.raises(TinyStoriesError, match=f"^{message}"):
            sampler.state_dict(samples=samples)


def test_stream_options_name_api_arguments_from_python_and_flags_from_the_cli(capsys):
    for options, message in [({"block_size": 0}, "block_size=0 must be at least 1"),
                             ({"shuffle_buffer": -1}, "shuffle_buffer=-1 must be at least 0"),
                             ({"pack": True, "keep_text": True},
                              "keep_text=True does not apply to packed blocks; drop one of pack=True, keep_text=True")]:
        with pytest.raises(TinyStoriesError) as failure:
            stream("demo", **options)
        assert str(failure.value) == message
    for argv, line in [(["--block-size", "0"], "error: --block-size 0 must be at least 1"),
                       (["--pack", "--keep-text"],
                        "error: --keep-text does not apply to packed blocks; drop one of --pack, --keep-text")]:
        assert stream_main(["--source", "demo", *argv]) == 2
        assert capsys.readouterr().err.strip() == line


def test_a_sampler_over_a_shard_does_not_split_it_again(tokens):
    """shard() and the sampler both share items out across ranks: together each rank would read 1/W of its
    shard and the rest of the data never (the README says: the sampler *instead of* shard())."""
    data, tokenizer = tokens
    stories = TinyStoriesDataset(data, tokenizer=tokenizer, block_size=4)
    share = stories.shard(rank=1, world_size=2)
    with pytest.raises(TinyStoriesError, match=r"^the dataset is one rank's shard\(\) and the sampler splits it "
                                               r"again over 2 ranks"):
        TinyStoriesSampler(share, rank=1, world_size=2)
    assert list(TinyStoriesSampler(share, shuffle=False, rank=0, world_size=1)) == [0, 1]  # its 2 items, alone
    assert len(TinyStoriesSampler(stories, rank=1, world_size=2)) == 2  # the whole dataset: ceil(3 / 2)
