"""A story holding a huge whitespace run: tiktoken's regex engine gives up on a run of about 10**6 characters
followed by text (`ValueError: ... Max stack size exceeded for backtracking`, or a pyo3 panic from
`encode_ordinary`; openai/tiktoken#245, #258), so `--backend tiktoken`, and `auto` through its tiktoken check,
ended prepare with a traceback. Each such story now gets its GPT-2 ids with every backend, in prepare and
stream; the reference is transformers' GPT2Tokenizer on the same BPE files."""
import json
import random

import datasets
import numpy as np
import pytest
from transformers import GPT2Tokenizer

from tinystories_hf import PrepareConfig, prepare, stream
from tinystories_hf.vocabulary.encoders import TiktokenEncoder, _gpt2_encoding, encode_around_whitespace_runs
from tinystories_hf.vocabulary.gpt2 import gpt2_bpe_files

HUGE = 1_000_000
STORIES = ["Once upon a time, there was a little dog." + " " * HUGE + "The end.",  # the issue's input
           "Tom had a red ball." + "\n" * HUGE + "He played with it all day.",
           "A cat sat." + " \n" * (HUGE // 2) + "'s hat was big.",  # mixed whitespace, then a contraction
           "It was cold." + "\u3000" * HUGE + "1, 2, 3!"]  # an ideographic space, then digits


@pytest.fixture(scope="module")
def reference():
    files = gpt2_bpe_files()
    return GPT2Tokenizer(vocab=str(files["encoder.json"]), merges=str(files["vocab.bpe"]))


def test_tiktoken_itself_fails_on_the_issues_story():
    """What the fix is for: if tiktoken encodes it one day, the fallback is dead code (and this test says so)."""
    with pytest.raises(ValueError, match="Max stack size exceeded for backtracking"):
        _gpt2_encoding().encode_to_numpy(STORIES[0], allowed_special=set(), disallowed_special=())


def test_the_issues_story_has_its_gpt2_ids(reference):
    """1,000,000 spaces between two sentences: GPT-2 has no merge of two spaces, so the run is the first
    sentence, 999,999 spaces (220), then " The end." with the run's last space."""
    encoder = TiktokenEncoder()
    lengths, values = encoder.encode_flat([STORIES[0]], np.uint16)
    first = reference("Once upon a time, there was a little dog.", add_special_tokens=False)["input_ids"]
    last = reference(" The end.", add_special_tokens=False)["input_ids"]
    assert values.tolist() == first + [220] * (HUGE - 1) + last
    assert lengths.tolist() == [len(first) + HUGE - 1 + len(last)]
    assert encoder.encode_batch([STORIES[0]])[0][-3:] == [383, 886, 13]  # " The", " end", "." (encode_ordinary path)


def test_pieces_around_whitespace_runs_give_the_ids_of_the_whole_text(reference):
    """The cut rule (ids(A + W + B) = ids(A) + bpe(W[:-1]) + ids(W[-1] + B)) on random texts of runs of every
    kind of whitespace at and around the cut length, letters, digits, contractions and punctuation."""
    rng = random.Random(0)
    spaces = ["\t", "\n", "\x0b", "\x0c", "\r", " ", "\x85", "\xa0", "\u2000", "\u2028", "\u3000", "\u202f"]
    other = ["a", "B", "1", "'", "'s", "!", "é", "日", "\x1c", "\u200b", "<|endoftext|>", "ve", "🙂"]
    encoder = TiktokenEncoder()
    for _ in range(60):
        parts = []
        for _ in range(rng.randint(1, 4)):
            parts.append("".join(rng.choice(other) for _ in range(rng.randint(0, 3))))
            run = rng.choice([1, 2, 4095, 4096, 4097, 9000])
            parts.append("".join(rng.choice(spaces) if rng.random() < 0.3 else " " for _ in range(run)))
        text = "".join(parts)
        ids = encode_around_whitespace_runs(text, encoder._encode, encoder.encoding._encode_single_piece)
        expected = reference(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        assert ids.tolist() == expected, repr(text[:30])


@pytest.fixture(scope="module")
def source(tmp_path_factory, sample_stories):
    """The huge-run stories among 300 real ones, as jsonl."""
    path = tmp_path_factory.mktemp("runs") / "stories.jsonl"
    rows = sample_stories[:100] + STORIES[:2] + sample_stories[100:200] + STORIES[2:] + sample_stories[200:300]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
    return path, rows


@pytest.mark.parametrize("backend", ["auto", "tiktoken", "hf"])  # auto: fastokens, checked against tiktoken
def test_prepare_stores_their_gpt2_ids_with_every_backend(source, reference, tmp_path, backend):
    path, _rows = source
    result = prepare(PrepareConfig(source=str(path), output=str(tmp_path / "out"), tokenizer="gpt-neo",
                                   vocab_size="full", max_length=None, min_length=0, backend=backend, num_proc=1,
                                   keep_text=True, validation_fraction=0.01, cache_dir=str(tmp_path / "cache")))
    stored = {row["text"]: row["input_ids"] for split in ("train", "validation")
              for row in datasets.load_from_disk(str(result.output))[split]}
    for story in STORIES:
        text = story.strip()  # the sources contract strips every story
        assert stored[text] == reference(text, add_special_tokens=False)["input_ids"], (backend, text[:20])
    info = json.loads((result.output / "prepare_info.json").read_text())
    assert info["backend"] == {"auto": "fastokens", "hf": "hf"}.get(backend, backend)


def test_every_backend_writes_the_same_bytes(tmp_path_factory, source):
    """The reduced vocabulary (the default path) over the same stories: byte-identical data files."""
    path, _ = source
    hashes = []
    for backend in ("auto", "tiktoken"):
        out = tmp_path_factory.mktemp(f"same-{backend}") / "out"
        prepare(PrepareConfig(source=str(path), output=str(out), vocab_size=300, backend=backend, num_proc=1))
        hashes.append(json.loads((out / "prepare_info.json").read_text())["data_files"])
    assert hashes[0] == hashes[1]


def test_stream_gives_the_same_ids(source, reference, tmp_path):
    path, _ = source
    rows = stream(str(path), base_tokenizer="gpt-neo", vocab_size="full", max_length=None, min_length=0,
                  backend="tiktoken", keep_text=True, vocab_stories=50)
    wanted = {story.strip() for story in STORIES}
    found = {row["text"]: row["input_ids"] for row in rows if row["text"] in wanted}
    assert len(found) == len(STORIES)
    for story in STORIES:
        assert found[story.strip()] == reference(story.strip(), add_special_tokens=False)["input_ids"]
