"""Base tokenizer ids, the three encoders, and the reduced-vocabulary TinyStoriesTokenizer."""
import json
import sys

import numpy as np
import pytest
from transformers import GPT2Tokenizer

from tinystories_hf import TinyStoriesError, TinyStoriesTokenizer, load_base_tokenizer
from tinystories_hf.vocabulary.base import make_encoder
from tinystories_hf.vocabulary.encoders import FastokensEncoder, HFEncoder, TiktokenEncoder
from tinystories_hf.vocabulary.gpt2 import gpt2_bpe_files, gpt2_ranks, is_gpt2_bpe

# GPT-2's pre-tokenizer corners: contractions, whitespace runs, digits, emoji, NUL, a literal separator.
EDGE_CASES = ["", " ", "   \n\n  \t", "a  b   c    d", "trailing   ", "\n" * 50, " " * 300 + "y",
              "Once upon a time<|endoftext|>There was", "<|endoftext|>", " <|endoftext|><|endoftext|> ",
              "naïve café – “quoted” ‘x’ — 日本語 🙂", "\r\n\r\n", "x" * 3000, "😀" * 200,
              "It's, I'll, we've, they're, don't, he'd, I'm", "IT'S 'tis 's ''s ' s rock'n'roll",
              "123 4567 89.0 1,000,000 -42 ２３ ¹² ٣٤", "🙂 👨‍👩‍👧 🇺🇸 👍🏽 ❤️", "a\x00b \x00\x00 \x01\x1b[0m\x7f",
              "e\u0301 a\u0308 \u200b\u200d", "\u00a0\u2003\u3000 spaces"]
ENCODERS = (lambda base: HFEncoder(base), lambda base: TiktokenEncoder(), lambda base: FastokensEncoder())


def _fuzz(count: int, seed: int = 0) -> list:
    """Seeded random strings: ASCII words, whitespace runs, digits, apostrophes and code points of every plane."""
    rng = np.random.default_rng(seed)
    pools = ["abcXYZ", " \t\n\r\u00a0", "0123456789", "'.,!?<|>", "'s 't 're 'll"]
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.integers(1, 30)):
            if rng.random() < 0.6:
                pool = pools[rng.integers(len(pools))]
                parts.append("".join(pool[i] for i in rng.integers(0, len(pool), rng.integers(1, 8))))
            else:
                top = [0x80, 0x800, 0x10000, 0x110000][rng.integers(4)]
                parts.append("".join(chr(c) for c in rng.integers(0, top, rng.integers(1, 4)) if not 0xD800 <= c < 0xE000))
        texts.append("".join(parts))
    return texts


@pytest.fixture(scope="module")
def base():
    return load_base_tokenizer()


def _gpt2_tokenizer():
    files = gpt2_bpe_files()  # transformers 5 spelling; vocab_file=/merges_file= would give an empty tokenizer
    return GPT2Tokenizer(vocab=str(files["encoder.json"]), merges=str(files["vocab.bpe"]))


def test_known_gpt_neo_ids(base):
    assert base.encode("Once upon a time").ids == [7454, 2402, 257, 640]
    assert base.get_vocab_size(with_added_tokens=True) == 50257
    assert HFEncoder(base).encode_batch(["Once upon a time"]) == [[7454, 2402, 257, 640]]
    assert TiktokenEncoder().encode_batch(["Once upon a time"]) == [[7454, 2402, 257, 640]]
    assert FastokensEncoder().encode_batch(["Once upon a time"]) == [[7454, 2402, 257, 640]]


def test_encoders_agree_on_every_real_story_and_edge_cases(base, sample_stories):
    texts = sample_stories + EDGE_CASES
    reference = _gpt2_tokenizer()(texts, split_special_tokens=True)["input_ids"]
    assert HFEncoder(base).encode_batch(texts) == TiktokenEncoder().encode_batch(texts) == reference
    assert FastokensEncoder().encode_batch(texts) == reference
    # encode_flat, the call prepare makes: the same ids, flattened, with each text's count
    for encoder in (make(base) for make in ENCODERS):
        lengths, values = encoder.encode_flat(texts, np.uint16)
        assert values.dtype == np.uint16 and lengths.tolist() == [len(ids) for ids in reference]
        assert values.tolist() == [i for ids in reference for i in ids]


def test_gpt2_ranks_are_tiktokens_own_reading_of_the_files():
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    files = gpt2_bpe_files()
    assert gpt2_ranks() == data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=str(files["vocab.bpe"]),
                                                           encoder_json_file=str(files["encoder.json"]))


def test_fastokens_gives_tiktokens_ids_on_random_unicode(base):
    texts = _fuzz(3000)
    expected = TiktokenEncoder().encode_batch(texts)
    assert sum(map(len, expected)) > 100_000
    assert FastokensEncoder().encode_batch(texts) == expected == HFEncoder(base).encode_batch(texts)


def test_fastokens_treats_lone_surrogates_as_tiktoken_does():
    """A Python str can hold a lone surrogate (UTF-8 data cannot): both replace it with U+FFFD's ids."""
    texts = ["a\ud800b", "\udfff", "x\ud83d", "fine"]
    expected = TiktokenEncoder().encode_batch(texts)
    assert expected[1] == TiktokenEncoder().encode_batch(["\ufffd"])[0]
    assert FastokensEncoder().encode_batch(texts) == expected


def test_base_tokenizer_matches_transformers_gpt2(base, sample_stories):
    gpt2 = _gpt2_tokenizer()
    assert base.get_vocab() == gpt2.get_vocab()
    for ids in gpt2(sample_stories[:300] + EDGE_CASES)["input_ids"]:
        assert base.decode(ids, skip_special_tokens=False) == gpt2.decode(ids, clean_up_tokenization_spaces=False)
    assert base.decode([7454, 50256, 640], skip_special_tokens=False) == "Once<|endoftext|> time"


def test_endoftext_inside_story_is_plain_text(base):
    expected = _gpt2_tokenizer()("a <|endoftext|> b", split_special_tokens=True)["input_ids"]
    for encoder in (make(base) for make in ENCODERS):
        ids = encoder.encode_batch(["a <|endoftext|> b"])[0]
        assert ids == expected and 50256 not in ids
        assert encoder.encode_flat(["a <|endoftext|> b"], np.uint16)[1].tolist() == expected


def test_auto_backend_picks_fastokens_for_gpt2_bpe_and_for_other_tokenizer_json(base, tmp_path):
    assert is_gpt2_bpe(base)
    assert make_encoder(base, "auto").name == "fastokens"
    assert make_encoder(base, "auto").note == ""
    assert (make_encoder(base, "hf").name, make_encoder(base, "tiktoken").name) == ("hf", "tiktoken")
    _gpt2_tokenizer().save_pretrained(str(tmp_path / "saved"))  # GPT-Neo saved by transformers: still GPT-2 BPE
    assert make_encoder(load_base_tokenizer(str(tmp_path / "saved")), "auto").name == "fastokens"
    # A different BPE (one merge removed) is not GPT-2: fastokens on its tokenizer.json (checked against hf in
    # every prepare, which falls back to hf on a difference), tiktoken is refused.
    spec = json.loads(base.to_str())
    spec["model"]["merges"] = spec["model"]["merges"][:-1]
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    other = load_base_tokenizer(str(tmp_path))
    assert not is_gpt2_bpe(other)
    auto = make_encoder(other, "auto")
    assert (auto.name, auto.reference().name, auto.fallback) == ("fastokens", "hf", True)
    assert (make_encoder(other, "fastokens").fallback, make_encoder(other, "hf").name) == (False, "hf")
    with pytest.raises(TinyStoriesError, match="^backend='tiktoken' only supports the GPT-2.*use backend='auto' or"):
        make_encoder(other, "tiktoken")


def test_auto_says_when_fastokens_is_missing(base, monkeypatch):
    """A platform without fastokens: auto uses tiktoken (the same ids) and says why; asking for it is an error."""
    monkeypatch.setitem(sys.modules, "fastokens", None)  # find_spec("fastokens") is None: not installed
    encoder = make_encoder(base, "auto")
    assert encoder.name == "tiktoken" and "fastokens is not installed" in encoder.note
    with pytest.raises(TinyStoriesError, match="pip install fastokens, or use backend='tiktoken'"):  # API names
        make_encoder(base, "fastokens")


def test_gpt2_bpe_with_other_ids_is_not_given_to_tiktoken(base):
    """Same vocabulary and merges, but an added token, a normalizer or a prefix space changes the ids: auto gives
    fastokens on the tokenizer.json itself, with the ids of tokenizers (its reference)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers

    added, lower, prefixed = (Tokenizer.from_str(base.to_str()) for _ in range(3))
    added.add_tokens(["Once upon"])
    lower.normalizer = normalizers.Lowercase()
    prefixed.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    plain = base.encode("Once upon a time").ids
    for tokenizer in (added, lower, prefixed):
        assert tokenizer.encode("Once upon a time").ids != plain
        assert not is_gpt2_bpe(tokenizer)
        encoder = make_encoder(tokenizer, "auto")
        texts = ["Once upon a time", "ONCE upon  a time <|endoftext|>", " Once upon"]
        assert encoder.name == "fastokens" and encoder.encode_batch(texts) == HFEncoder(tokenizer).encode_batch(texts)
        assert encoder.encode_batch(texts) != TiktokenEncoder().encode_batch(texts)


def test_unknown_tokenizer_is_a_clear_error(tmp_path):
    with pytest.raises(TinyStoriesError, match="could not load tokenizer"):
        load_base_tokenizer(str(tmp_path / "nope"))


def _toy(base, vocab_size=6):
    counts = np.zeros(50257, dtype=np.int64)
    counts[[10, 20, 30, 40, 50256]] = [5, 9, 5, 1, 100]  # 10 and 30 tie: lower base id first
    return TinyStoriesTokenizer.from_counts(base, counts, vocab_size)


def test_reduced_vocab_layout_includes_specials(base):
    tok = _toy(base)
    assert tok.vocab_size == 6 and len(tok) == 6
    assert (tok.eos_id, tok.unk_id) == (0, 1)
    assert tok.base_ids.tolist() == [50256, -1, 20, 10, 30, 40]
    assert tok.counts.tolist() == [0, 100, 9, 5, 5, 1]  # UNK counts what it absorbs (here the EOS base id)
    assert tok.remap([20, 10, 30, 40, 7, 50256]).tolist() == [2, 3, 4, 5, 1, 1]
    assert tok.remap([20]).dtype == np.uint16


def test_vocab_size_limits(base):
    counts = np.ones(50257, dtype=np.int64)
    with pytest.raises(TinyStoriesError, match="exceeds the base tokenizer"):
        TinyStoriesTokenizer.from_counts(base, counts, 50259)
    assert TinyStoriesTokenizer.from_counts(base, counts, 50258).vocab_size == 50258  # 50,256 + EOS + UNK


def test_encode_decode_with_unk(base):
    counts = np.zeros(50257, dtype=np.int64)
    ids = base.encode("Once upon a time there was a cat").ids
    counts[ids] = 1
    tok = TinyStoriesTokenizer.from_counts(base, counts, 2 + len(set(ids)))
    story = "Once upon a time there was a cat"
    assert tok.decode(tok.encode(story)) == story
    mixed = tok.encode("Once upon a time there was a dog")
    assert mixed.count(tok.unk_id) == 1
    assert tok.decode(mixed) == "Once upon a time there was a<|unk|>"
    assert tok.decode(mixed, skip_special_tokens=True) == "Once upon a time there was a"
    assert tok.decode([tok.eos_id] + tok.encode(" cat")) == "<|endoftext|> cat"
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([tok.vocab_size])


def test_save_and_load_roundtrip_is_json(base, tmp_path, sample_stories):
    tok = _toy(base, vocab_size=1000)
    folder = tok.save_pretrained(tmp_path / "tok")
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == [
        "base/tokenizer.json", "base/tokenizer_config.json", "tinystories_vocab.json", "tokenization_tinystories.py",
        "tokenizer_config.json"]
    saved = json.loads((folder / "tinystories_vocab.json").read_text())
    assert saved["vocab_size"] == 1000 and saved["eos_id"] == 0 and saved["unk_id"] == 1
    loaded = TinyStoriesTokenizer.from_pretrained(folder)
    assert loaded.fingerprint == tok.fingerprint
    from transformers import AutoTokenizer  # the saved base opens in transformers too

    assert AutoTokenizer.from_pretrained(str(folder / "base"))("Once upon a time")["input_ids"] == [7454, 2402, 257, 640]
    assert np.array_equal(loaded.base_to_reduced, tok.base_to_reduced)
    assert loaded.encode_batch(sample_stories[:50]) == tok.encode_batch(sample_stories[:50])


def test_edited_base_tokenizer_is_detected(base, tmp_path):
    folder = _toy(base).save_pretrained(tmp_path / "tok")
    spec = json.loads((folder / "base" / "tokenizer.json").read_text())
    spec["model"]["vocab"]["Once"], spec["model"]["vocab"]["time"] = spec["model"]["vocab"]["time"], \
        spec["model"]["vocab"]["Once"]
    (folder / "base" / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(TinyStoriesError, match="base tokenizer differs"):
        TinyStoriesTokenizer.from_pretrained(folder)


def test_missing_tokenizer_folder(tmp_path):
    with pytest.raises(TinyStoriesError, match="tinystories_vocab.json: not found"):
        TinyStoriesTokenizer.from_pretrained(tmp_path)
