"""A tokenizer.json whose ids leave gaps (issue 29, item 4): 600 tokens with ids up to 70,599. Every array indexed
by a base id and every dtype holding one is sized by the largest id + 1, never by the token count (which gave
`OverflowError: Python integer 70001 out of bounds for uint16`)."""
import json

import datasets
import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from tinystories_hf import PrepareConfig, TinyStoriesTokenizer, load_base_tokenizer, prepare
from tinystories_hf.store.validate import validate_prepared
from tinystories_hf.vocabulary.encoders import id_space

WORDS = ["Once", "upon", "a", "time", "there", "was", "dog", "cat", "The", "ran", "to", "park", "."]


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    """(folder, vocab): a WordLevel tokenizer.json of 600 tokens; odd ones at 70,000.., EOS at 70,599."""
    names = WORDS + [f"w{k}" for k in range(600 - 2 - len(WORDS))]
    vocab = {name: 70_000 + k if k % 2 else 100 + k for k, name in enumerate(names)}
    vocab.update({"[UNK]": 5, "<|endoftext|>": 70_599})
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    folder = tmp_path_factory.mktemp("sparse") / "tok"
    folder.mkdir()
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>", "unk_token": "[UNK]"}))
    return folder, vocab


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    rng = np.random.default_rng(0)
    stories = [" ".join(rng.choice(WORDS + ["w7", "w500", "zebra"], size=12)) for _ in range(60)]
    path = tmp_path_factory.mktemp("src") / "stories.jsonl"
    path.write_text("".join(json.dumps({"text": s}) + "\n" for s in stories))
    return path


def test_the_id_space_is_the_largest_id_plus_one(sparse):
    folder, vocab = sparse
    base = load_base_tokenizer(str(folder))
    assert base.get_vocab_size(with_added_tokens=True) == 600 and max(vocab.values()) == 70_599
    assert id_space(base) == 70_600


def test_a_full_vocabulary_of_sparse_ids_is_stored_as_uint32(sparse, source, tmp_path):
    folder, _ = sparse
    result = prepare(PrepareConfig(source=str(source), output=str(tmp_path / "out"), tokenizer=str(folder),
                                   vocab_size="full", min_length=0, keep_text=True, num_proc=1, backend="hf"))
    assert result.tokenizer.vocab_size == 70_600 and result.tokenizer.id_dtype == "uint32"
    assert result.tokenizer.eos_id == 70_599 and result.tokenizer.unk_id == 5
    reference = Tokenizer.from_file(str(folder / "tokenizer.json"))  # the library itself
    data = datasets.load_from_disk(str(result.output))
    assert data["train"].features["input_ids"].feature.dtype == "uint32"
    for split in data.values():
        for row in split:
            assert row["input_ids"] == reference.encode(row["text"]).ids
    assert max(max(ids) for ids in data["train"]["input_ids"]) >= 70_000
    assert validate_prepared(str(result.output))["vocab_size"] == 70_600


def test_a_reduced_vocabulary_of_sparse_ids_keeps_only_real_tokens(sparse, source, tmp_path):
    folder, vocab = sparse
    result = prepare(PrepareConfig(source=str(source), output=str(tmp_path / "out"), tokenizer=str(folder),
                                   vocab_size=100, min_length=0, keep_text=True, num_proc=1, backend="hf"))
    tok = result.tokenizer
    assert tok.vocab_size == 100 and tok.id_dtype == "uint16"
    assert set(tok.base_ids[2:].tolist()) <= set(vocab.values())  # no unused id filled in
    assert validate_prepared(str(result.output))["vocab_size"] == 100
    again = TinyStoriesTokenizer.from_pretrained(str(result.output))
    for row in datasets.load_from_disk(str(result.output))["train"]:
        assert again.decode(row["input_ids"]) == row["text"].replace("zebra", "[UNK]")


def test_autotokenizer_of_a_sparse_full_vocabulary_gives_the_stored_ids(sparse, source, tmp_path):
    from transformers import AutoTokenizer

    folder, _ = sparse
    result = prepare(PrepareConfig(source=str(source), output=str(tmp_path / "out"), tokenizer=str(folder),
                                   vocab_size="full", min_length=0, keep_text=True, num_proc=1, backend="hf"))
    auto = AutoTokenizer.from_pretrained(str(result.output / "tokenizer"), trust_remote_code=True)
    row = datasets.load_from_disk(str(result.output))["train"][0]
    assert auto(row["text"])["input_ids"] == row["input_ids"]
