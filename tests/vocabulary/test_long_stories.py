"""A very long story through the `tokenizers` backend (issue 29, item 4): encoded in pieces, which bounds its
memory (scripts/long_story_memory.py: a 20M-character story peaked at +2,353 MiB whole, +289 MiB in pieces), with
exactly the ids of the whole text as `tokenizers` itself gives them."""
import json

import pytest
from conftest import SAMPLE_JSONL
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from tinystories_hf import load_base_tokenizer
from tinystories_hf.vocabulary.encoders import HFEncoder, can_cut, cut_points
from tinystories_hf.vocabulary.train_tokenizer import TrainTokenizerConfig, train_tokenizer

TRICKY = ("Tom's dog didn't run. It's 12 o'clock!  Two spaces, then\nnew lines\n\n and tabs\t here. "
          "Ünïcödé wörds, 日本語 text, emoji 🙂 and <|endoftext|> in a story: \"Quoted.\" (Paren) end.\u00a0Nbsp "
          "x  y   z ")


@pytest.fixture(scope="module")
def long_text():
    stories = [json.loads(line)["text"] for _, line in zip(range(400), SAMPLE_JSONL.open(encoding="utf-8"))]
    return " ".join(stories[:200]) + TRICKY * 20 + "\n".join(stories[200:])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("bpe") / "tok"
    return train_tokenizer(TrainTokenizerConfig(source=str(SAMPLE_JSONL), output=str(out), vocab_size=600,
                                                sample_size=500, num_proc=1)).output


@pytest.mark.parametrize("which", ["gpt-neo", "trained"])
@pytest.mark.parametrize("every", [7, 100, 5000])
def test_a_story_cut_into_pieces_has_the_ids_of_the_whole(which, every, long_text, trained):
    path = "gpt-neo" if which == "gpt-neo" else str(trained)
    whole = Tokenizer.from_file(str(trained / "tokenizer.json")) if which == "trained" else load_base_tokenizer()
    whole.encode_special_tokens = True
    encoder = HFEncoder(load_base_tokenizer(path))
    assert encoder.piece_chars == 1 << 20  # both are GPT-2-style byte-level BPEs: cut
    encoder.piece_chars = every
    assert len(cut_points(long_text, every)) > len(long_text) // (every + 200)  # really cut, many times
    texts = [long_text, "short story.", TRICKY]
    assert encoder.encode_batch(texts) == [whole.encode(t, add_special_tokens=False).ids for t in texts]


def test_cut_points_are_only_spaces_between_a_word_end_and_a_letter():
    text = "A cat.  B dog 3 x\n y 'z ok"
    # not after ".", a space, a newline or before "3", "'", a space: GPT-2's regex may join those
    assert cut_points(text, 1) == [1, 9, 15, 23]
    assert [text[p - 1:p + 2] for p in cut_points(text, 1)] == ["A c", "B d", "3 x", "z o"]
    assert cut_points(text, 10) == [15]
    assert cut_points("no_space_at_all" * 10, 5) == []


def test_tokenizers_that_a_cut_could_change_are_never_cut():
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    assert can_cut(json.loads(bpe.to_str()))
    bpe.normalizer = normalizers.NFKC()
    assert not can_cut(json.loads(bpe.to_str()))
    prefix = Tokenizer(models.BPE())
    prefix.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)  # a piece would get a space in front
    assert not can_cut(json.loads(prefix.to_str()))
    words = Tokenizer(models.WordLevel(vocab={"[UNK]": 0}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    assert not can_cut(json.loads(words.to_str()))
    added = load_base_tokenizer()
    added.add_tokens(["cat dog"])  # a non-special added token may span a space
    assert not can_cut(json.loads(added.to_str()))
