"""Encoders keep their settings in worker processes (issue 29, item 3).

`datasets.map(num_proc>1)` pickles the encoder into its workers; a `tokenizers.Tokenizer` set to
`encode_special_tokens` after it was built lost the setting there, so a story holding the literal text
`<|endoftext|>` got the EOS id inside it. Every encoder class must round-trip through pickle (and
`copy.deepcopy`) with its ids unchanged, and prepare must keep such a story as text on the multi-process path.
"""
import copy
import inspect
import json
import pickle

import datasets
import pytest
from conftest import SAMPLE_JSONL
from transformers import AutoTokenizer, GPT2Tokenizer

from tinystories_hf import PrepareConfig, TinyStoriesTokenizer, load_base_tokenizer, prepare
from tinystories_hf.store.validate import validate_prepared
from tinystories_hf.tokenize import passes as tokenize
from tinystories_hf.vocabulary import encoders, sentencepiece_base, sentencepiece_fast
from tinystories_hf.vocabulary.base import make_encoder
from tinystories_hf.vocabulary.gpt2 import gpt2_bpe_files
from tinystories_hf.vocabulary.train_tokenizer import TrainTokenizerConfig, train_tokenizer

EOT = "<|endoftext|>"
TEXTS = [f"Once upon a time {EOT} there was a cat.", EOT, f"Tom said: {EOT}{EOT}<|unk|></s><s> The end.", ""]


@pytest.fixture(scope="module")
def small_bpe(tmp_path_factory):
    """A byte-level BPE trained on 300 real stories: EOS `<|endoftext|>` is its special id 0."""
    out = tmp_path_factory.mktemp("bpe") / "tok"
    return train_tokenizer(TrainTokenizerConfig(source=str(SAMPLE_JSONL), output=str(out), vocab_size=400,
                                                sample_size=300, num_proc=1)).output


@pytest.fixture(scope="module")
def small_spm(tmp_path_factory):
    pytest.importorskip("sentencepiece", reason="the [sentencepiece] extra is a test dependency")
    out = tmp_path_factory.mktemp("spm") / "tok"
    return train_tokenizer(TrainTokenizerConfig(source=str(SAMPLE_JSONL), output=str(out), model="sentencepiece",
                                                vocab_size=400, sample_size=300, num_proc=1)).output / "tok400.model"


# Every encoder class, and how to build one: a class missing here fails test_every_encoder_class_is_in_the_table.
ENCODERS = {
    "HFEncoder": lambda bpe, spm: make_encoder(load_base_tokenizer(str(bpe)), "hf"),
    "TiktokenEncoder": lambda bpe, spm: make_encoder(load_base_tokenizer(), "tiktoken"),
    "FastokensEncoder": lambda bpe, spm: make_encoder(load_base_tokenizer(), "fastokens"),
    "SentencePieceEncoder": lambda bpe, spm: make_encoder(load_base_tokenizer(str(spm)), "sentencepiece"),
    "FastTokenizerJsonEncoder": lambda bpe, spm: make_encoder(load_base_tokenizer(str(bpe)), "fastokens"),
    "SentencePieceFastEncoder": lambda bpe, spm: make_encoder(load_base_tokenizer(str(spm)), "fastokens"),
}
MODULES = (encoders, sentencepiece_base, sentencepiece_fast)


def _encoder_classes() -> set:
    found = set()
    for module in MODULES:
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and hasattr(cls, "encode_batch") and not name.startswith("_"):
                found.add(name)
    return found


def test_every_encoder_class_is_in_the_table():
    assert _encoder_classes() == set(ENCODERS)
    classes = {name: getattr(module, name) for module in MODULES for name in ENCODERS if hasattr(module, name)}
    assert all(issubclass(cls, encoders.Encoder) for cls in classes.values())


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_encoder_round_trips_through_pickle_with_its_ids(name, small_bpe, small_spm):
    encoder = ENCODERS[name](small_bpe, small_spm)
    assert type(encoder).__name__ == name
    encoder.note = "a note set after building"
    before = encoder.encode_batch(TEXTS)
    for copied in (pickle.loads(pickle.dumps(encoder)), copy.deepcopy(encoder)):
        assert type(copied) is type(encoder) and copied.note == encoder.note
        assert copied.fingerprint == encoder.fingerprint and copied.vocab_size == encoder.vocab_size
        assert copied.encode_batch(TEXTS) == before
        lengths, values = copied.encode_flat(TEXTS, "uint32")
        assert lengths.tolist() == [len(ids) for ids in before] and values.tolist() == [i for ids in before for i in ids]


def test_literal_endoftext_is_text_after_pickling():
    """Independent values: transformers' slow GPT-2 tokenizer with split_special_tokens, and the EOS id 50256."""
    files = gpt2_bpe_files()
    reference = GPT2Tokenizer(vocab=str(files["encoder.json"]), merges=str(files["vocab.bpe"]))
    for backend in ("hf", "tiktoken", "fastokens"):
        copied = pickle.loads(pickle.dumps(make_encoder(load_base_tokenizer(), backend)))
        ids = copied.encode_batch(TEXTS[:1])[0]
        assert 50256 not in ids
        assert ids == reference.encode(TEXTS[0], split_special_tokens=True)
    bpe_eos = TinyStoriesTokenizer.full(load_base_tokenizer(), specials={"eos": 50256, "bos": None, "unk": None})
    assert 50256 not in copy.deepcopy(bpe_eos).encode(TEXTS[0])


def test_autotokenizer_module_keeps_its_settings_through_deepcopy(prepared_demo):
    tok = AutoTokenizer.from_pretrained(str(prepared_demo.output / "tokenizer"), trust_remote_code=True)
    ids = tok(TEXTS[0])["input_ids"]
    assert tok.eos_token_id == 0 and 0 not in ids
    for copied in (copy.deepcopy(tok), pickle.loads(pickle.dumps(tok))):
        assert copied(TEXTS[0])["input_ids"] == ids
        assert copied.decode(ids) == tok.decode(ids)


def _source_with_literal_eot(path):
    """250 real stories; stories 10, 100 and 200 hold the literal text `<|endoftext|>`."""
    stories = [json.loads(line)["text"] for _, line in zip(range(250), SAMPLE_JSONL.open(encoding="utf-8"))]
    for i in (10, 100, 200):
        stories[i] = f"{stories[i]} She wrote {EOT} on the wall.{EOT}"
    path.write_text("".join(json.dumps({"text": s}) + "\n" for s in stories), encoding="utf-8")
    return path


@pytest.mark.parametrize("tokenizer", ["gpt-neo", "trained-bpe"])
def test_prepare_on_the_multi_process_path_keeps_a_literal_endoftext_as_text(tokenizer, tmp_path, monkeypatch,
                                                                             small_bpe):
    monkeypatch.setattr(tokenize, "ROWS_PER_PROCESS", 100)  # two encode workers for the 240 train stories
    source = _source_with_literal_eot(tmp_path / "stories.jsonl")
    result = prepare(PrepareConfig(source=str(source), output=str(tmp_path / "out"), backend="hf", num_proc=2,
                                   tokenizer=str(small_bpe) if tokenizer == "trained-bpe" else "gpt-neo",
                                   vocab_size="full", max_length=None, min_length=0, keep_text=True,
                                   cache_dir=str(tmp_path / "cache")))
    assert list((tmp_path / "cache").rglob("cache-*_00001_of_00002.arrow"))  # the encode pass ran in 2 workers
    saved = TinyStoriesTokenizer.from_pretrained(str(result.output / "tokenizer"))
    eos = 50256 if tokenizer == "gpt-neo" else 0
    assert saved.eos_id == eos
    held = 0
    for split in result.dataset.values():
        for row in split:
            assert eos not in row["input_ids"]
            assert saved.decode(row["input_ids"]) == row["text"]
            held += EOT in row["text"]
    assert held == 3
    report = validate_prepared(str(result.output))
    assert report["splits"]["train"]["rows"] + report["splits"]["validation"]["rows"] == 250
    assert datasets.load_from_disk(str(result.output))["train"].num_rows == result.dataset["train"].num_rows
