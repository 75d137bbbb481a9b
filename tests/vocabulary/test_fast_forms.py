"""fastokens for every vocabulary: a trained byte-level BPE's tokenizer.json read by fastokens, and a SentencePiece
model's converted form, give the ids of their references (`tokenizers`; `SentencePieceProcessor.encode`, called
here directly) on every real story, on adversarial text and on seeded random strings; through prepare's
multi-process map; and a wrong fast encoder is caught by prepare's check and replaced by the reference, said
and recorded."""
import json
import pickle
import random
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import sentencepiece as spm
import tokenizers
from conftest import REPO

from tinystories_hf import pipeline
from tinystories_hf.pipeline import main
from tinystories_hf.vocabulary.base import load_base_tokenizer, make_encoder
from tinystories_hf.vocabulary.encoders import FastTokenizerJsonEncoder, HFEncoder
from tinystories_hf.vocabulary.sentencepiece_base import SentencePieceEncoder, SentencePieceTokenizer
from tinystories_hf.vocabulary.sentencepiece_fast import STAND_IN, SentencePieceFastEncoder, convert

# Whitespace runs, byte-fallback characters, digits, the unk surface, apostrophes (GPT-2's contractions),
# sentencepiece's own space symbol, the stand-in for the apostrophe, control characters, long words.
ADVERSARIAL = [
    "", " ", "   ", "\t", "\n", "\n\n\n", "a  b", "  leading", "trailing  ", "  both  ", "a \t b", "a\u3000b",
    " \u00a0 x", "x" + " " * 600 + "y", "line one\n\n  line two  \n", "\u2581", "a\u2581", "\u2581\u2581a",
    " \u2581 b", "a \u2581b", "\u2581 ", "12345 678,90 3.14 -7", "\u0663\u0664 \uff11\uff12 \u00b2", " \u2047 ",
    "\u2047", "a \u2047 b", "C'mon, it's Tom's 'mon 'll 've", "''s 'S 'd", "\u2019s don\u2019t", STAND_IN,
    f"it{STAND_IN}s", "\ufdd1\u2582 \U0001f600 \U0001f468\u200d\U0001f469\u200d\U0001f467", "\u65e5\u672c\u8a9e",
    "e\u0301 \u00e9", "\x00\x01\x1f\x7f", "<s></s><unk><0x41>", "<|endoftext|>", "a" * 3000, "Once upon a time.",
]


def _fuzz(count: int, seed: int) -> list:
    rng = random.Random(seed)
    alphabet = ["a", "b", "the", "Once", " ", "  ", "\n", "\t", "'", "'s", "'m", "0", "42", ".", ",", "!", "\u2581",
                "\u2047", "\u00e9", "\u00a0", "\u3000", "\U0001f600", "\u4e00", "\u0663", STAND_IN, "\ufdd1", "\u2019"]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(count)]


@pytest.fixture(scope="module")
def spm_model(trained_spm):
    return SentencePieceTokenizer.from_file(trained_spm.output / "tok4096.model")


def test_trained_bpe_by_fastokens_gives_the_tokenizers_ids(trained_bpe, sample_stories):
    base = load_base_tokenizer(str(trained_bpe.output))
    encoder = make_encoder(base, "auto")
    assert isinstance(encoder, FastTokenizerJsonEncoder) and encoder.fallback and encoder.note == ""
    reference = tokenizers.Tokenizer.from_file(str(trained_bpe.output / "tokenizer.json"))
    reference.encode_special_tokens = True  # story text is ordinary text: <|endoftext|> in it is not the EOS
    texts = sample_stories + ADVERSARIAL + _fuzz(2000, seed=1)
    expected = [e.ids for e in reference.encode_batch(texts, add_special_tokens=False)]
    assert encoder.encode_batch(texts) == expected
    assert encoder.reference().encode_batch(texts) == expected
    assert expected[ADVERSARIAL.index("<|endoftext|>") + len(sample_stories)] != [reference.token_to_id("<|endoftext|>")]


def test_sentencepiece_converted_form_gives_sentencepieces_ids(spm_model, trained_spm, sample_stories):
    encoder = make_encoder(spm_model, "auto")
    assert isinstance(encoder, SentencePieceFastEncoder) and encoder.fallback
    processor = spm.SentencePieceProcessor(model_file=str(trained_spm.output / "tok4096.model"))
    texts = sample_stories + ADVERSARIAL + _fuzz(3000, seed=2)
    expected = processor.encode(texts)
    got = encoder.encode_batch(texts)
    differ = [t for t, a, b in zip(texts, expected, got) if a != b]
    assert differ == []
    # the adversarial text does reach byte fallback, collapsed spaces and the digits
    byte_ids = {i for i in range(processor.get_piece_size()) if processor.is_byte(i)}
    assert byte_ids & set(encoder.encode_batch(["\ufdd1\u2582"])[0])
    assert encoder.encode_batch(["a  b"]) == encoder.encode_batch(["a b"]) == [processor.encode("a b")]
    assert encoder.encode_batch(["   "]) == [[]]
    lengths, values = encoder.encode_flat(texts[-200:], np.uint16)
    assert values.dtype == np.uint16 and values.tolist() == [i for ids in expected[-200:] for i in ids]
    assert lengths.tolist() == [len(ids) for ids in expected[-200:]]


def test_llama2_style_model_without_extra_whitespace_removal(tmp_path, sample_stories):
    """Llama 2's tokenizer.model keeps runs of spaces (remove_extra_whitespaces false): the converted form too."""
    model = tmp_path / "m"
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sample_stories[:2000]), model_prefix=str(model),
                                   vocab_size=600, model_type="bpe", byte_fallback=True, split_digits=True,
                                   remove_extra_whitespaces=False, minloglevel=2, num_threads=1)
    tokenizer = SentencePieceTokenizer.from_file(f"{model}.model")
    encoder = make_encoder(tokenizer, "auto")
    texts = sample_stories[:500] + ADVERSARIAL + _fuzz(1000, seed=3)
    assert encoder.encode_batch(texts) == spm.SentencePieceProcessor(model_file=f"{model}.model").encode(texts)


def test_a_model_without_an_exact_fast_form_is_encoded_by_sentencepiece_saying_why(tmp_path, sample_stories):
    model = tmp_path / "uni"
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sample_stories[:1000]), model_prefix=str(model),
                                   vocab_size=500, model_type="unigram", minloglevel=2, num_threads=1)
    tokenizer = SentencePieceTokenizer.from_file(f"{model}.model")
    why = "a unigram model, not BPE; a precompiled normalization (nmt_nfkc); no byte fallback"  # sentencepiece's defaults
    assert convert(tokenizer) == (None, why)
    encoder = make_encoder(tokenizer, "auto")
    assert isinstance(encoder, SentencePieceEncoder)
    assert encoder.note == f"auto: no exact fast form of this model ({why}); sentencepiece gives the ids, slower"
    with pytest.raises(Exception, match="no exact fast form"):
        make_encoder(tokenizer, "fastokens")


def test_encoders_pickle_as_a_recipe_and_keep_their_settings(spm_model, trained_bpe):
    bpe = make_encoder(load_base_tokenizer(str(trained_bpe.output)), "auto")
    for encoder in (bpe, make_encoder(spm_model, "auto")):
        encoder.note, encoder.fallback = "a note", False
        state = encoder.__getstate__()
        assert set(state) <= {"spec", "vocab_size", "identity", "note", "fallback", "model", "path"}
        copy = pickle.loads(pickle.dumps(encoder))
        assert (type(copy), copy.note, copy.fallback, copy.fingerprint, copy.vocab_size) == \
               (type(encoder), "a note", False, encoder.fingerprint, encoder.vocab_size)
        assert copy.encode_batch(ADVERSARIAL) == encoder.encode_batch(ADVERSARIAL)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """12,000 + 200 generated stories: prepare's tokenize pass runs in 2 processes (5,000 rows each at least)."""
    out = tmp_path_factory.mktemp("corpus") / "c"
    subprocess.run([sys.executable, str(REPO.parent / "shared" / "tools" / "make_corpus.py"), str(out), "--train",
                    "12000", "--validation", "200", "--layout", "jsonl"], check=True, stdout=subprocess.DEVNULL)
    return out


def _prepare(tokenizer, corpus, out, *extra):
    assert main(["--source", str(corpus), "--tokenizer", str(tokenizer), "--vocab-size", "full", "--max-length",
                 "none", "--min-length", "0", "--num-proc", "2", "--keep-text", "--output", str(out),
                 "--cache-dir", str(out.parent / "cache"), *extra]) == 0
    return json.loads((out / "prepare_info.json").read_text())


def _texts_and_ids(out: Path, split: str) -> tuple:
    data = datasets.load_from_disk(str(out))[split]
    return list(data["text"]), list(data["input_ids"])


def test_multi_process_prepare_gives_the_references_ids(trained_spm, trained_bpe, corpus, tmp_path):
    model = trained_spm.output / "tok4096.model"
    fast = _prepare(model, corpus, tmp_path / "spm")
    assert fast["backend"] == "fastokens" and fast["backend_check"]["reference"] == "sentencepiece"
    assert fast["backend_fallback"] is None and set(fast["stage_seconds"]) >= {"tokenize", "check", "remap"}
    processor = spm.SentencePieceProcessor(model_file=str(model))
    for split in ("train", "validation"):
        texts, ids = _texts_and_ids(tmp_path / "spm", split)
        assert ids == processor.encode(texts)
    bpe = _prepare(trained_bpe.output, corpus, tmp_path / "bpe")
    assert bpe["backend"] == "fastokens" and bpe["backend_check"]["reference"] == "hf"
    reference = tokenizers.Tokenizer.from_file(str(trained_bpe.output / "tokenizer.json"))
    texts, ids = _texts_and_ids(tmp_path / "bpe", "train")
    assert ids == [e.ids for e in reference.encode_batch(texts, add_special_tokens=False)]


class _WrongOnOneStory(FastTokenizerJsonEncoder):
    """fastokens on the trained BPE, made wrong on purpose: one extra id in the story starting with `START`."""

    START = ""

    def encode_flat(self, texts, dtype):
        lengths, values = super().encode_flat(texts, dtype)
        hits = [i for i, text in enumerate(texts) if text.startswith(self.START)]
        if not hits:
            return lengths, values
        lengths = lengths.copy()
        lengths[hits[0]] += 1
        return lengths, np.insert(values, int(lengths[:hits[0] + 1].sum()) - 1, 7)


def test_a_wrong_fast_encoder_is_caught_and_the_reference_encodes_said_and_recorded(trained_bpe, sample_stories,
                                                                                    tmp_path, monkeypatch, capsys):
    source = tmp_path / "source"
    source.mkdir()
    for name, part in (("train", sample_stories[:400]), ("validation", sample_stories[400:450])):
        (source / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in part))
    row = 137  # every story of so small a source is in the check
    wrong = sample_stories[row]
    assert sum(t.startswith(wrong[:80]) for t in sample_stories[:450]) == 1
    monkeypatch.setattr(_WrongOnOneStory, "START", wrong[:80])
    made = []

    def wrong_encoder(tokenizer, backend):
        encoder = _WrongOnOneStory(tokenizer.to_str(), vocab_size=tokenizer.get_vocab_size(with_added_tokens=True))
        encoder.fallback = True
        made.append(encoder)
        return encoder

    monkeypatch.setattr(pipeline, "make_encoder", wrong_encoder)
    info = _prepare(trained_bpe.output, source, tmp_path / "out", "--num-proc", "1")
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("vocabulary:"))
    fallback = info["backend_fallback"]
    assert (info["backend"], fallback["from"], fallback["to"], fallback["split"], fallback["row"]) == \
           ("hf", "fastokens", "hf", "train", row)
    assert f"backend hf (auto: fastokens's ids differed from hf's on split 'train' row {row} " in line
    assert "tokenize_reference" in info["stage_seconds"] and info["backend_check"] is None
    assert isinstance(made[0].reference(), HFEncoder)
    monkeypatch.undo()
    reference = _prepare(trained_bpe.output, source, tmp_path / "hf", "--num-proc", "1", "--backend", "hf")
    assert reference["backend"] == "hf" and reference["data_files"] == info["data_files"]
    # without fallback (--backend fastokens, or GPT-2's auto) the same difference stops the run: one line
    monkeypatch.setattr(pipeline, "make_encoder", lambda tokenizer, backend: _WrongOnOneStory(
        tokenizer.to_str(), vocab_size=tokenizer.get_vocab_size(with_added_tokens=True)))
    monkeypatch.setattr(_WrongOnOneStory, "START", wrong[:80])
    assert main(["--source", str(source), "--tokenizer", str(trained_bpe.output), "--vocab-size", "full",
                 "--output", str(tmp_path / "stopped"), "--num-proc", "1", "--cache-dir", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert f"error: split 'train' row {row}: the fastokens encoder's ids differ from hf's" in err
    assert "rerun with --backend hf" in err and not (tmp_path / "stopped").exists()
