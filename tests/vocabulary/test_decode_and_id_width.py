"""Decoding a SentencePiece vocabulary with specials inside the text equals sentencepiece's own decode (llama2.c's
`Tokenizer.decode`), in TinyStoriesTokenizer and through AutoTokenizer's module; a reduced SentencePiece
vocabulary's EOS and UNK by name; and vocabularies wider than uint16 encode every id as itself."""
import json

import numpy as np
import pytest
import sentencepiece as spm
from conftest import SAMPLE_JSONL, word_level_tokenizer
from transformers import AutoTokenizer

from tinystories_hf import TinyStoriesTokenizer
from tinystories_hf.vocabulary.base import base_special_ids, load_base_tokenizer
from tinystories_hf.vocabulary.sentencepiece_base import SentencePieceTokenizer


@pytest.fixture(scope="module")
def stories():
    with open(SAMPLE_JSONL, encoding="utf-8") as f:
        return [json.loads(line)["text"] for _, line in zip(range(800), f)]


@pytest.fixture(scope="module")
def sp_model(stories, tmp_path_factory):
    """A small model trained with llama2.c's train_vocab settings (byte fallback: bytes of rare characters)."""
    folder = tmp_path_factory.mktemp("spm")
    (folder / "tiny.txt").write_text("".join(t.strip() + "\n" for t in stories), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(folder / "tiny.txt"), model_prefix=str(folder / "tok600"),
                                   model_type="bpe", vocab_size=600, input_format="text", character_coverage=0.9995,
                                   num_threads=1, split_digits=True, allow_whitespace_only_pieces=True,
                                   byte_fallback=True, normalization_rule_name="identity", minloglevel=2)
    return folder / "tok600.model"


@pytest.fixture(scope="module")
def vocabularies(sp_model, stories):
    """(sentencepiece itself, the full vocabulary: its own ids, unk 0 bos 1 eos 2; a reduced one of 400 ids)."""
    sp = spm.SentencePieceProcessor(model_file=str(sp_model))
    base = SentencePieceTokenizer.from_file(sp_model)
    full = TinyStoriesTokenizer.full(base, specials={"eos": 2, "bos": 1, "unk": 0})
    counts = np.bincount([i for ids in sp.encode(stories) for i in ids], minlength=600)
    reduced = TinyStoriesTokenizer.from_counts(base, counts, 400)
    return sp, full, reduced


def _with_specials(ids: list, specials: list, rng) -> list:
    out = list(ids)
    for _ in range(1 + len(ids) // 15):
        out.insert(int(rng.integers(0, len(out) + 1)), int(rng.choice(specials)))
    return out


def test_specials_inside_the_text_keep_the_next_words_space(vocabularies):
    """The issue's `happy<|unk|>an alligator`: the space of `▁an` stays, as sentencepiece decodes it."""
    sp, full, reduced = vocabularies
    words = reduced.encode("happy") + [1] + reduced.encode("an alligator")
    assert 1 not in reduced.encode("happy an alligator")
    assert reduced.decode(words) == "happy<|unk|> an alligator"
    assert reduced.decode(words, skip_special_tokens=True) == "happy an alligator" == sp.decode(
        sp.encode("happy an alligator"))
    ids = full.encode("Once upon a time") + [2, 1] + full.encode("there was a dog")
    assert full.decode(ids) == "Once upon a time</s><s> there was a dog"
    assert full.decode([1, *full.encode("Once")]) == "<s>Once"  # the text's first piece: no space, as sentencepiece


def test_decode_skipping_specials_is_sentencepieces_decode_of_the_other_ids(vocabularies, stories):
    """Random stories with EOS/BOS/UNK put inside: the text is sentencepiece's decode of the ids less the specials
    (llama2.c's Tokenizer.decode; its control ids decode to nothing), for both vocabularies."""
    sp, full, reduced = vocabularies
    rng = np.random.default_rng(0)
    for text in stories[:150]:
        ids = _with_specials(full.encode(text), [0, 1, 2], rng)
        assert full.decode(ids, skip_special_tokens=True) == sp.decode([i for i in ids if i > 2]), text
        ids = _with_specials(reduced.encode(text), [0, 1], rng)
        regular = [int(reduced.base_ids[i]) for i in ids if i > 1]
        assert reduced.decode(ids, skip_special_tokens=True) == sp.decode(regular), text
        assert reduced.decode(ids).replace("<|endoftext|>", "").replace("<|unk|>", "") == sp.decode(regular)


def test_autotokenizer_decodes_as_the_pipeline_and_names_a_reduced_eos(vocabularies, stories, tmp_path):
    """Through the module saved in the folder: the same text for the same ids; a reduced SentencePiece
    vocabulary's EOS (id 0, no base token) is `<|endoftext|>`, never `<|unk|>`."""
    _, full, reduced = vocabularies
    rng = np.random.default_rng(1)
    for name, ours, specials in (("spm_full_tok", full, [0, 1, 2]), ("spm_reduced_tok", reduced, [0, 1])):
        ours.save_pretrained(tmp_path / name)
        auto = AutoTokenizer.from_pretrained(str(tmp_path / name), trust_remote_code=True)
        for text in stories[:40]:
            ids = _with_specials(ours.encode(text), specials, rng)
            assert auto.decode(ids) == ours.decode(ids), (name, text)
            assert auto.decode(ids, skip_special_tokens=True) == ours.decode(ids, skip_special_tokens=True)
    assert auto.convert_ids_to_tokens([0, 1]) == ["<|endoftext|>", "<|unk|>"]
    assert (auto.eos_token_id, auto.unk_token_id) == (0, 1)
    assert auto.decode([0]) == "<|endoftext|>" and auto.decode([1]) == "<|unk|>"
    assert auto.decode(reduced.encode("happy") + [0, 1]) == "happy<|endoftext|><|unk|>"


def test_a_vocabulary_wider_than_uint16_encodes_every_id_as_itself(tmp_path):
    """65,543 word ids: `w65540` is id 65,540 (through uint16 it would be 4); reduced to 65,540 ids, by the tie
    rule (no token counted: the lowest base ids, base id + 2), `w65537` is 65,539 and `w65538` UNK."""
    folder = word_level_tokenizer(65_541, {"unk": "[UNK]", "eos": "</s>"}, tmp_path / "wide", {"eos_token": "</s>"})
    base = load_base_tokenizer(str(folder))
    full = TinyStoriesTokenizer.full(base, specials=base_special_ids(base, str(folder)))
    assert (full.vocab_size, full.id_dtype, full.eos_id, full.unk_id) == (65_543, "uint32", 65_542, 65_541)
    assert full.encode("w65540 w4 w65536 w65535") == [65_540, 4, 65_536, 65_535]
    assert full.encode_batch(["w65540", "zz"]) == [[65_540], [65_541]]
    assert full.decode([65_540, 4]) == "w65540 w4"
    reduced = TinyStoriesTokenizer.from_counts(base, np.zeros(65_543, np.int64), 65_540)  # keeps w0..w65537
    assert reduced.id_dtype == "uint32"
    assert reduced.encode("w65537 w4 w65538 w65534") == [65_539, 6, 1, 65_536]
    assert reduced.decode([65_539, 6, 65_536]) == "w65537 w4 w65534"
