"""The whole preparation job on real stories, checked against an independent count."""
import dataclasses
import hashlib
import json
import re
import sys
from pathlib import Path

import datasets
import numpy as np
import processes
import pytest
from conftest import SAMPLE_JSONL
from transformers import GPT2Tokenizer

from tinystories_hf import PrepareConfig, TinyStoriesError, TinyStoriesTokenizer, pipeline, prepare
from tinystories_hf.pipeline import main
from tinystories_hf.store import folder as store
from tinystories_hf.tokenize import passes as tokenize
from tinystories_hf.vocabulary.encoders import FastokensEncoder
from tinystories_hf.vocabulary.gpt2 import gpt2_bpe_files


@pytest.fixture(scope="module")
def reference():
    """The plain transformers GPT-2 tokenizer: an independent source of ids for the checks below."""
    files = gpt2_bpe_files()
    return GPT2Tokenizer(vocab=str(files["encoder.json"]), merges=str(files["vocab.bpe"]))


def test_counts_match_an_independent_count(prepared_sample, reference):
    info = prepared_sample.info
    raw = datasets.load_dataset("json", data_files=str(SAMPLE_JSONL))["train"]["text"]
    assert sum(c["stories"] for c in info["splits"].values()) == len(raw) == 5520
    for split, ds in prepared_sample.dataset.items():
        texts = list(ds["text"])  # kept stories (keep_text=True in the fixture)
        lengths = np.array([len(ids) for ids in reference(texts)["input_ids"]])
        c = info["splits"][split]
        assert c["kept"] == len(texts) == ds.num_rows
        assert c["truncated"] == int((lengths > 512).sum())
        assert c["tokens"] == int(np.minimum(lengths, 512).sum()) == int(np.sum(ds["length"]))
        assert c["skipped_short"] == c["skipped_empty"] == 0  # the sample has no story under 10 tokens
    # Facts of ../shared/data measured with the GPT-2 BPE: 1,130,659 tokens, 120 stories over 512.
    assert sum(c["tokens_before_truncation"] for c in info["splits"].values()) == 1_130_659
    assert sum(c["truncated"] for c in info["splits"].values()) == 120


def test_vocabulary_is_the_top_tokens_of_train(prepared_sample, reference):
    tok = prepared_sample.tokenizer
    train = list(prepared_sample.dataset["train"]["text"])  # 5,465 stories < 100K: every story counted
    counts = np.bincount(np.concatenate([np.array(ids) for ids in reference(train)["input_ids"]]), minlength=50257)
    counts[50256] = -1  # EOS is a special, never a regular entry
    expected = sorted(range(50257), key=lambda i: (-counts[i], i))[: tok.vocab_size - 2]
    assert tok.vocab_size == 10_000 and (tok.eos_id, tok.unk_id) == (0, 1)
    assert tok.base_ids[2:].tolist() == expected
    assert tok.counts[2:].tolist() == counts[expected].tolist()
    # Validation tokens outside the kept set are exactly the UNK count.
    val = prepared_sample.dataset["validation"]
    kept = set(expected)
    unk = sum(sum(1 for i in ids[:512] if i not in kept) for ids in reference(list(val["text"]))["input_ids"])
    assert prepared_sample.info["splits"]["validation"]["unk_tokens"] == unk > 0


def test_stored_ids_decode_to_the_story(prepared_sample, reference):
    tok = prepared_sample.tokenizer
    checked = 0
    for ds in prepared_sample.dataset.values():
        for row in ds:
            ids = row["input_ids"]
            base = reference(row["text"])["input_ids"]
            assert ids == tok.remap(base[:512]).tolist()
            if len(base) <= 512 and tok.unk_id not in ids:
                assert tok.decode(ids) == row["text"]
                assert tok.encode(row["text"]) == ids
                checked += 1
    assert checked > 5_000


def test_plain_load_from_disk_and_features(prepared_sample):
    out = prepared_sample.output
    ds = datasets.load_from_disk(str(out))
    assert set(ds) == {"train", "validation"}
    assert ds["train"].features["input_ids"] == datasets.List(datasets.Value("uint16"))
    assert ds["train"].features["length"] == datasets.Value("int32")
    lengths = np.array(ds["train"]["length"])
    assert lengths.min() >= 10 and lengths.max() == 512
    info = json.loads((out / "prepare_info.json").read_text())
    assert info["config"]["vocab_size"] == 10_000 and info["vocab_size"] == 10_000
    assert info["source"]["kind"] == "json" and info["versions"]["datasets"] == datasets.__version__
    assert info["vocab_sha256"] == TinyStoriesTokenizer.from_pretrained(out).fingerprint
    assert info["elapsed_seconds"] > 0
    assert list(info["stage_seconds"]) == ["load", "source_hash", "tokenize", "check", "vocabulary", "remap"]
    assert 0 < sum(info["stage_seconds"].values()) <= info["elapsed_seconds"]
    assert set(info["tokenizer_files"]) == {"tinystories_vocab.json", "base/tokenizer.json",
                                            "base/tokenizer_config.json", "tokenizer_config.json",
                                            "tokenization_tinystories.py"}
    assert not list(out.parent.glob(".sample.partial-*"))


def _data_hashes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "prepare_info.json"}


def test_outputs_are_byte_identical_whatever_num_proc(tmp_path, monkeypatch):
    monkeypatch.setattr(tokenize, "ROWS_PER_PROCESS", 200)  # let the 5.5K-story sample use pools in both passes
    monkeypatch.setattr(tokenize, "REDUCE_ROWS_PER_SEGMENT", 1000)
    config = PrepareConfig(source=str(SAMPLE_JSONL), output=str(tmp_path / "p2"), num_proc=2, vocab_size=3000,
                           vocab_sample_size=1000, cache_dir=str(tmp_path / "c2"))
    two = prepare(config)
    one = prepare(dataclasses.replace(config, output=str(tmp_path / "p1"), num_proc=1, cache_dir=str(tmp_path / "c1")))
    pooled = {f.name.split("_")[0] for f in (tmp_path / "c2").rglob("cache-*_of_00002.arrow")}
    assert len(pooled) == 2  # train's tokenize and remap passes both really ran in two worker processes
    assert not list((tmp_path / "c1").rglob("cache-*_of_00002.arrow"))
    assert _data_hashes(one.output) == _data_hashes(two.output)
    # the two remap segments became the two shards of the saved train split, copied from datasets' cache
    assert sorted(p.name for p in (one.output / "train").glob("*.arrow")) == [
        "data-00000-of-00002.arrow", "data-00001-of-00002.arrow"]
    assert datasets.load_from_disk(str(one.output))["train"]["input_ids"] == two.dataset["train"]["input_ids"]
    assert one.info["vocab_sample"]["stories"] == 1000
    assert one.info["splits"]["train"]["unk_tokens"] > 0


def test_backends_give_byte_identical_outputs(tmp_path):
    config = PrepareConfig(source=str(SAMPLE_JSONL), output=str(tmp_path / "hf"), backend="hf", vocab_size=4000,
                           cache_dir=str(tmp_path / "c1"))
    hf = prepare(config)
    tiktoken, fast = (prepare(dataclasses.replace(config, output=str(tmp_path / name), backend=name,
                                                  cache_dir=str(tmp_path / f"c-{name}")))
                      for name in ("tiktoken", "fastokens"))
    assert (hf.info["backend"], tiktoken.info["backend"], fast.info["backend"]) == ("hf", "tiktoken", "fastokens")
    assert _data_hashes(hf.output) == _data_hashes(tiktoken.output) == _data_hashes(fast.output)
    # every run checks fastokens' ids against tiktoken's on a seeded sample of about 4,000 stories
    check = fast.info["backend_check"]
    assert (check["reference"], check["seed"]) == ("tiktoken", 1337) and 4_000 <= check["stories"] <= 4_100
    assert hf.info["backend_check"] is None and tiktoken.info["backend_check"] is None


class _WrongOnOneStory(FastokensEncoder):
    """fastokens, made wrong on purpose: one extra id after the story that starts with `WRONG_START`."""

    WRONG_START = ""

    def encode_flat(self, texts, dtype):
        lengths, values = super().encode_flat(texts, dtype)
        hits = [i for i, text in enumerate(texts) if text.startswith(self.WRONG_START)]
        if not hits:
            return lengths, values
        end = int(lengths[:hits[0] + 1].sum())
        lengths = lengths.copy()
        lengths[hits[0]] += 1
        return lengths, np.insert(values, end, 50)


@pytest.mark.parametrize("split,row", [("train", 137), ("validation", 7)])
def test_a_wrong_fast_encoder_stops_the_run_naming_the_story(tmp_path, monkeypatch, capsys, split, row):
    stories = [json.loads(line)["text"] for line in SAMPLE_JSONL.open(encoding="utf-8")][:450]
    source = tmp_path / "source"
    source.mkdir()
    for name, part in (("train", stories[:400]), ("validation", stories[400:])):
        (source / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in part))
    wrong = (stories[:400] if split == "train" else stories[400:])[row]
    assert sum(t.startswith(wrong[:60]) for t in stories) == 1
    monkeypatch.setattr(_WrongOnOneStory, "WRONG_START", wrong[:60])
    monkeypatch.setattr(pipeline, "make_encoder", lambda tokenizer, backend: _WrongOnOneStory())
    code = main(["--source", str(source), "--output", str(tmp_path / "out"), "--num-proc", "1",
                 "--cache-dir", str(tmp_path / "cache"), "--vocab-size", "500"])
    err = capsys.readouterr().err
    errors = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err
    err = errors[0]
    assert err.startswith(f"error: split '{split}' row {row}: the fastokens encoder's ids differ from tiktoken's")
    assert "rerun with --backend tiktoken" in err
    assert not (tmp_path / "out").exists()


def test_default_columns_and_min_max_length(tmp_path):
    result = prepare(PrepareConfig(source="demo", output=str(tmp_path / "d"), min_length=30, max_length=64,
                                   vocab_size=300))
    train = result.dataset["train"]
    assert train.column_names == ["input_ids", "length"]
    lengths = np.array(train["length"])
    assert lengths.min() >= 30 and lengths.max() == 64
    c = result.info["splits"]["train"]
    assert c["kept"] + c["skipped_short"] + c["skipped_empty"] == c["stories"] == 3000
    assert c["skipped_short"] > 0 and c["truncated"] > 0


def test_bad_rows_are_skipped_and_counted(tmp_path):
    path = tmp_path / "rows.jsonl"
    good = "Once upon a time, a little dog named Max ran to the park to play with his red ball."
    rows = [{"text": good}, {"text": None}, {"text": ""}, {"text": "   \n  "}, {}, {"text": "Hi."}, {"text": good}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = prepare(PrepareConfig(source=str(path), output=str(tmp_path / "o"), vocab_size=50,
                                   validation_fraction=0.2, seed=0))
    total = {k: sum(c[k] for c in result.info["splits"].values()) for k in ("stories", "kept", "skipped_empty",
                                                                             "skipped_short")}
    assert total == {"stories": 7, "kept": 2, "skipped_empty": 4, "skipped_short": 1}


def test_existing_output_is_refused_then_replaced_atomically(tmp_path, monkeypatch):
    out = tmp_path / "o"
    config = PrepareConfig(source="demo", output=str(out), vocab_size=300, num_proc=1)
    prepare(config)
    before = _data_hashes(out)
    with pytest.raises(TinyStoriesError, match="already exists; pass overwrite=True"):  # the API names API arguments
        prepare(config)
    # A failure while saving leaves the previous complete folder untouched and no partial folder behind.
    monkeypatch.setattr(TinyStoriesTokenizer, "save_pretrained", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        prepare(dataclasses.replace(config, overwrite=True, vocab_size=400))
    assert _data_hashes(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".o.lock", "o"]  # the writer lock file stays
    monkeypatch.undo()
    prepare(dataclasses.replace(config, overwrite=True, vocab_size=400))
    assert json.loads((out / "prepare_info.json").read_text())["vocab_size"] == 400


@pytest.mark.parametrize("option, message", [
    ({"vocab_size": 2}, "too small"), ({"max_length": 5}, "below min_length=10"), ({"num_proc": 0}, "at least 1"),
    ({"validation_fraction": 1.5}, "between 0 and 1"), ({"backend": "fast"}, "not one of")])
def test_bad_options_are_one_line_errors(tmp_path, option, message):
    with pytest.raises(TinyStoriesError, match=message):
        prepare(PrepareConfig(source="demo", output=str(tmp_path / "o"), **option))
    assert not (tmp_path / "o").exists()


def test_help_shows_every_option_with_the_dataclass_default():
    run = processes.run([sys.executable, "-m", "tinystories_hf.pipeline", "--help"], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0
    options = " ".join(run.stdout.split("options:", 1)[1].split())
    entries = {entry.split()[0].rstrip(","): entry for entry in re.split(r"(?<!,) (?=--[a-z])", options)}
    for f in dataclasses.fields(PrepareConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        assert f"(default: {default})" in entries["--" + f.name.replace("_", "-")], f.name


def test_cli_prints_the_summary_table(tmp_path, capsys):
    assert main(["--source", "demo", "--output", str(tmp_path / "o"), "--vocab-size", "300",
                 "--vocab-sample-size", "all", "--num-proc", "1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["split", "stories", "kept", "short", "empty", "truncated", "tokens",
                                           "unk", "unk", "%", "eot", "in", "text"]
    assert out.splitlines()[1].split()[:2] == ["train", "3,000"]
    info = json.loads((tmp_path / "o" / "prepare_info.json").read_text())
    assert info["config"]["vocab_sample_size"] is None and info["vocab_sample"]["stories"] == 3000
    assert main(["--source", "demo", "--output", str(tmp_path / "o")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_copied_cache_files_are_what_save_to_disk_writes(prepared_sample, tmp_path):
    """The prepared folder is written by copying the remap pass's cache files: the same metadata files as
    datasets' save_to_disk and the same rows; a split that is not exactly its cache files is not copied."""
    reduced = prepared_sample.dataset["train"]
    assert store._whole_cache_files(reduced)  # so prepare wrote it by copying
    reduced.save_to_disk(str(tmp_path / "saved"))
    assert store.copy_to_disk(reduced, tmp_path / "copied")
    for name in ("state.json", "dataset_info.json"):
        assert (tmp_path / "copied" / name).read_text() == (tmp_path / "saved" / name).read_text()
    copied, saved = datasets.load_from_disk(str(tmp_path / "copied")), datasets.load_from_disk(str(tmp_path / "saved"))
    assert copied.features == saved.features and copied.data.to_pydict() == saved.data.to_pydict()
    assert not store.copy_to_disk(reduced.select(range(10)), tmp_path / "selected")
    assert not (tmp_path / "selected").exists()
