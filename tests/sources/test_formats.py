"""The same stories give the same dataset whatever files they come in (issue 12), and each input of the issue.

The real sample is written in 10 layouts. Single files have no validation split, so prepare carves one; the
folders declare the same partition (computed with `carve_validation` on row numbers), so every layout must
give byte-identical train and validation data files. The V2 folder also declares a test split: its own.
"""
import gzip
import json
import os

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE_EOT, SAMPLE_JSONL

from tinystories_hf import (
    PrepareConfig,
    TinyStoriesDataset,
    TinyStoriesDatasetPacked,
    TinyStoriesError,
    load_prepared,
    prepare,
    write_hub_folder,
)
from tinystories_hf.pipeline import main, summary_table
from tinystories_hf.sources import carve_validation
from tinystories_hf.store.validate import validate_prepared
from tinystories_hf.stream import stream, stream_stories

EOT = "<|endoftext|>"
TEST_STORIES = 40  # the V2 folder's test split: the first 40 stories of the sample


def _v2(stories, newline="\n") -> str:
    return "".join(s.replace("\n", newline) + newline + EOT + newline for s in stories)


@pytest.fixture(scope="module")
def partition(sample_stories):
    """Row numbers of the sample in train and validation, as prepare carves a single file (defaults)."""
    rows = datasets.Dataset.from_dict({"row": list(range(len(sample_stories)))})
    carved = carve_validation(rows, PrepareConfig.validation_fraction, PrepareConfig.seed)
    return {split: list(carved[split]["row"]) for split in ("train", "validation")}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory, sample_stories, partition):
    """name -> (source, text column, splits the source declares)."""
    root = tmp_path_factory.mktemp("layouts")
    train = [sample_stories[i] for i in partition["train"]]
    valid = [sample_stories[i] for i in partition["validation"]]
    half = len(train) // 2

    hub = root / "hub" / "data"
    hub.mkdir(parents=True)
    pq.write_table(pa.table({"text": train[:half]}), hub / "train-00000-of-00002.parquet")
    pq.write_table(pa.table({"text": train[half:]}), hub / "train-00001-of-00002.parquet")
    pq.write_table(pa.table({"text": valid}), hub / "validation-00000-of-00001.parquet")
    pq.write_table(pa.table({"text": sample_stories}), root / "stories.parquet", row_group_size=1000)
    (root / "array.json").write_text(json.dumps([{"id": i, "story": "\n\n" + s} for i, s in enumerate(sample_stories)],
                                                indent=1), encoding="utf-8")
    (root / "bom-crlf.txt").write_bytes(b"\xef\xbb\xbf" + _v2(sample_stories, "\r\n").encode())
    (root / "stories.jsonl.gz").write_bytes(gzip.compress(SAMPLE_JSONL.read_bytes()))
    v2 = root / "v2-folder"
    v2.mkdir()
    (v2 / "TinyStoriesV2-GPT4-train.txt").write_text(_v2(train), encoding="utf-8")
    (v2 / "TinyStoriesV2-GPT4-valid.txt").write_text(_v2(valid), encoding="utf-8")
    (v2 / "TinyStoriesV2-GPT4-test.txt").write_text(_v2(sample_stories[:TEST_STORIES]), encoding="utf-8")
    for split, stories in (("train", train[:half]), ("train", train[half:]), ("valid", valid)):
        (root / "subfolders" / split).mkdir(parents=True, exist_ok=True)
        part = len(list((root / "subfolders" / split).iterdir()))
        (root / "subfolders" / split / f"part-{part}.txt").write_text(_v2(stories), encoding="utf-8")
    (root / "cr.txt.gz").write_bytes(gzip.compress(_v2(sample_stories, "\r").encode()))  # old Mac line endings
    card = root / "card"  # a README.md header names the files; the name rules would read decoy.parquet as train
    (card / "shards").mkdir(parents=True)
    (card / "README.md").write_text("---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n"
                                    "    path: shards/part-*.parquet\n  - split: validation\n    path: held-out.parquet\n"
                                    "---\n# Stories\n")
    binary = [s.encode() for s in train]  # parquet written without the UTF8 annotation: binary
    for i, (a, b) in enumerate(((0, 1), (1, half), (half, len(train)))):
        pq.write_table(pa.table({"text": pa.array(binary[a:b], pa.binary())}), card / f"shards/part-{i}.parquet",
                       row_group_size=7)
    pq.write_table(pa.table({"text": pa.array(valid).dictionary_encode()}), card / "held-out.parquet")
    pq.write_table(pa.table({"text": ["A decoy story that must not be read."] * 3}), card / "decoy.parquet")
    return {
        "jsonl": (str(SAMPLE_JSONL), "text", ["train"]),
        "v2-lone-cr-gz": (str(root / "cr.txt.gz"), "text", ["train"]),
        "readme-configs-binary-parquet": (str(card), "text", ["train", "validation"]),
        "hub-parquet-folder": (str(root / "hub"), "text", ["train", "validation"]),
        "parquet-file": (str(root / "stories.parquet"), "text", ["train"]),
        "json-array-story-field": (str(root / "array.json"), "story", ["train"]),
        "v2-bom-crlf": (str(root / "bom-crlf.txt"), "text", ["train"]),
        "jsonl-gz": (str(root / "stories.jsonl.gz"), "text", ["train"]),
        "v2-folder-with-test": (str(v2), "text", ["train", "validation", "test"]),
        "train-valid-subfolders": (str(root / "subfolders"), "text", ["train", "validation"]),
    }


@pytest.fixture(scope="module")
def prepared(layouts, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared-layouts")
    return {name: prepare(PrepareConfig(source=source, text_column=column, output=str(out / name), keep_text=True,
                                        num_proc=1))
            for name, (source, column, _) in layouts.items()}


def _data_files(result, split: str) -> dict:
    """sha256 of the split's files (data shards, state.json, dataset_info.json) as recorded at save time."""
    recorded = json.loads((result.output / "prepare_info.json").read_text())["data_files"]
    return {name: digest for name, digest in recorded.items() if name.startswith(split + "/")}


def test_every_layout_gives_byte_identical_train_and_validation(prepared, sample_stories, partition):
    reference = prepared["jsonl"]
    assert reference.dataset["train"]["text"] == [sample_stories[i] for i in partition["train"]]
    assert reference.dataset["validation"]["text"] == [sample_stories[i] for i in partition["validation"]]
    for name, result in prepared.items():
        for split in ("train", "validation"):
            assert _data_files(result, split) == _data_files(reference, split), (name, split)
            assert result.info["splits"][split] == reference.info["splits"][split], (name, split)
        assert result.tokenizer.fingerprint == reference.tokenizer.fingerprint, name


def test_the_test_split_is_its_own(prepared, sample_stories):
    result = prepared["v2-folder-with-test"]
    assert list(result.dataset) == ["train", "validation", "test"]
    assert result.dataset["test"]["text"] == sample_stories[:TEST_STORIES]
    assert result.info["splits"]["test"]["stories"] == TEST_STORIES
    assert result.info["source"]["validation"] == "source"
    assert [s for s in prepared if "test" in prepared[s].dataset] == ["v2-folder-with-test"]


def test_a_test_split_reaches_summary_report_validate_hub_and_adapters(prepared, tmp_path):
    from tinystories_hf.report.write import write_report

    result = prepared["v2-folder-with-test"]
    out, test_ids = result.output, list(result.dataset["test"]["input_ids"])
    assert summary_table(result.info["splits"]).splitlines()[3].split()[:2] == ["test", f"{TEST_STORIES:,}"]
    assert validate_prepared(out)["splits"]["test"]["rows"] == TEST_STORIES
    assert write_report(out, output=tmp_path / "report")["splits"]["test"]["stories"] == TEST_STORIES
    hub = write_hub_folder(out, tmp_path / "hub")
    assert min(p.name for p in (hub / "data").iterdir()).startswith("test-")
    assert list(datasets.load_dataset(str(hub))["test"]["input_ids"]) == test_ids
    assert list(load_prepared(hub)[0]["test"]["input_ids"]) == test_ids
    story = TinyStoriesDataset(str(out), split="test", block_size=1024)
    x, _ = story[3]
    assert len(story) == TEST_STORIES and x[:len(test_ids[3])].tolist() == test_ids[3]
    packed = TinyStoriesDatasetPacked(str(out), split="test", block_size=64)
    assert len(packed) == (sum(len(ids) + 1 for ids in test_ids) - 1) // 64


@pytest.mark.parametrize("name", ["hub-parquet-folder", "parquet-file", "json-array-story-field", "v2-bom-crlf",
                                  "v2-folder-with-test", "train-valid-subfolders", "jsonl-gz", "v2-lone-cr-gz",
                                  "readme-configs-binary-parquet"])
def test_streaming_gives_the_prepared_stories(name, layouts, prepared, sample_stories):
    source, column, declared = layouts[name]
    if name == "parquet-file":  # shards: its row groups, so DataLoader workers and ranks share one file
        assert stream_stories(source).num_shards == pq.ParquetFile(source).num_row_groups == 6
    for split in declared:
        streamed = [row["text"] for row in stream_stories(source, split=split, text_column=column)]
        if split == "train" and declared == ["train"]:  # a single file streams all its stories, not carved
            assert streamed == sample_stories
        else:
            assert streamed == prepared[name].dataset[split]["text"]


def test_bom_and_crlf_give_the_ids_of_clean_text_in_prepare_and_stream(prepared, layouts, sample_stories):
    """Issue input 3: a BOM once gave the first story 3 more tokens (171, 119, 123)."""
    tok = prepared["jsonl"].tokenizer
    expected = [tok.encode(s)[:512] for s in sample_stories[:50]]
    ds = stream(layouts["v2-bom-crlf"][0], tokenizer=tok)
    assert [row["input_ids"] for row in ds.take(50)] == expected
    first = sample_stories.index(prepared["v2-bom-crlf"].dataset["train"]["text"][0])
    assert prepared["v2-bom-crlf"].dataset["train"]["input_ids"][0] == tok.encode(sample_stories[first])[:512]


def _first_2mb_v2(folder, *, meta: bool):
    """Issue input 1: the first 2,000,000 bytes of the sample's V2 file as a train and a valid file."""
    raw = SAMPLE_EOT.read_bytes()[:2_000_000]
    cut = raw.index(b"\n" + EOT.encode() + b"\n", len(raw) // 2) + len(EOT) + 2
    folder.mkdir()
    (folder / "TinyStoriesV2-GPT4-train.txt").write_bytes(raw[:cut])
    (folder / "TinyStoriesV2-GPT4-valid.txt").write_bytes(raw[cut:])
    if meta:
        (folder / "meta.json").write_text('{"a":1}')
    lines = raw.decode("utf-8").split("\n")
    return sum(line == EOT for line in lines) + (lines[-1] != EOT)  # separators, and the cut last story


@pytest.mark.parametrize("meta", [True, False])
def test_a_stray_json_file_does_not_change_the_parser(tmp_path, capsys, meta):
    expected = _first_2mb_v2(tmp_path / "v2", meta=meta)
    assert expected == 2_257
    assert main(["--source", str(tmp_path / "v2"), "--output", str(tmp_path / "out"), "--num-proc", "1",
                 "--vocab-size", "300", "--cache-dir", str(tmp_path / "hf")]) == 0
    info = json.loads((tmp_path / "out" / "prepare_info.json").read_text())
    assert info["splits"]["train"]["stories"] + info["splits"]["validation"]["stories"] == expected
    assert info["splits"]["train"]["skipped_short"] == info["splits"]["validation"]["skipped_short"] == 0
    assert info["source"]["ignored"] == (["meta.json"] if meta else [])
    assert ("not read (in no split): meta.json" in capsys.readouterr().out) == meta


def test_a_literal_eot_inside_a_story_is_text_in_every_format_and_counted(tmp_path, sample_stories, capsys):
    stories = sample_stories[:30]
    stories[3] += f" The end.{EOT}"
    stories[7] = f"{EOT} starts it. " + stories[7]
    stories[8] = stories[8].replace(". ", f". {EOT} ", 1)
    (tmp_path / "s.txt").write_text(_v2(stories))
    (tmp_path / "s.jsonl").write_text("".join(json.dumps({"text": s}) + "\n" for s in stories))
    runs = {}
    for name in ("s.txt", "s.jsonl"):
        assert main(["--source", str(tmp_path / name), "--output", str(tmp_path / f"out-{name}"), "--num-proc", "1",
                     "--vocab-size", "300", "--keep-text", "--validation-fraction", "0.1"]) == 0
        info = json.loads((tmp_path / f"out-{name}" / "prepare_info.json").read_text())
        assert info["splits"]["train"]["stories"] + info["splits"]["validation"]["stories"] == 30
        assert info["splits"]["train"]["literal_eot"] + info["splits"]["validation"]["literal_eot"] == 3
        table = capsys.readouterr().out.splitlines()
        assert table[0].split()[-3:] == ["eot", "in", "text"]
        assert sum(int(row.split()[-1]) for row in table[1:3]) == 3
        runs[name] = datasets.load_from_disk(str(tmp_path / f"out-{name}"))
    for split in ("train", "validation"):
        assert list(runs["s.txt"][split]["text"]) == list(runs["s.jsonl"][split]["text"])
        assert list(runs["s.txt"][split]["input_ids"]) == list(runs["s.jsonl"][split]["input_ids"])
    assert stories[3] in list(runs["s.txt"]["train"]["text"]) + list(runs["s.txt"]["validation"]["text"])


@pytest.mark.parametrize("num_proc", [1, 2])
def test_a_non_string_story_column_in_any_shard_is_an_error_never_a_cast(tmp_path, sample_stories, num_proc):
    """Issue input 5: a Hub-layout folder whose second shard's text column holds integers."""
    data = tmp_path / "hub" / "data"
    data.mkdir(parents=True)
    pq.write_table(pa.table({"text": sample_stories[:100]}), data / "train-00000-of-00002.parquet")
    pq.write_table(pa.table({"text": np.arange(1000)}), data / "train-00001-of-00002.parquet")
    pq.write_table(pa.table({"text": sample_stories[100:110]}), data / "validation-00000-of-00001.parquet")
    with pytest.raises(TinyStoriesError, match=r"^[^\n]*train-00001-of-00002.parquet: column 'text' holds int64, "
                                               r"not text; [^\n]*$"):
        prepare(PrepareConfig(source=str(tmp_path / "hub"), output=str(tmp_path / "out"), num_proc=num_proc,
                              cache_dir=str(tmp_path / "hf")))
    jsonl = tmp_path / "jsonl"
    jsonl.mkdir()
    (jsonl / "train-0.jsonl").write_text("".join(json.dumps({"text": s}) + "\n" for s in sample_stories[:50]))
    (jsonl / "train-1.jsonl").write_text(json.dumps({"text": "A story."}) + "\n" + json.dumps({"text": 7}) + "\n")
    with pytest.raises(TinyStoriesError, match=r"^[^\n]*train-1.jsonl: line 2: 'text' holds a number, not a string"):
        prepare(PrepareConfig(source=str(jsonl), output=str(tmp_path / "out"), num_proc=num_proc,
                              cache_dir=str(tmp_path / "hf")))


def test_extra_columns_in_a_shard_are_ignored(tmp_path, sample_stories):
    data = tmp_path / "hub" / "data"
    data.mkdir(parents=True)
    pq.write_table(pa.table({"text": sample_stories[:100]}), data / "train-00000-of-00002.parquet")
    pq.write_table(pa.table({"extracol": range(100), "text": sample_stories[100:200]}),
                   data / "train-00001-of-00002.parquet")
    pq.write_table(pa.table({"text": sample_stories[200:210], "id": [str(i) for i in range(10)]}),
                   data / "validation-00000-of-00001.parquet")
    result = prepare(PrepareConfig(source=str(tmp_path / "hub"), output=str(tmp_path / "out"), num_proc=2,
                                   vocab_size=300, keep_text=True, cache_dir=str(tmp_path / "hf")))
    assert result.dataset["train"]["text"] == sample_stories[:200]
    assert result.dataset["validation"]["text"] == sample_stories[200:210]


def test_parse_errors_name_the_absolute_line_or_row(tmp_path):
    """Issue input 6: a broken line 70,000 of a 100,000-line jsonl (several parse blocks)."""
    lines = [json.dumps({"text": f"Story number {i} is a short one."}) for i in range(100_000)]
    lines[69_999] = '{"text": "cut'
    (tmp_path / "s.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(TinyStoriesError, match=r"s.jsonl: line 70000: not valid JSON \(Unterminated string starting "
                                               r"at column 10\)"):
        prepare(PrepareConfig(source=str(tmp_path / "s.jsonl"), output=str(tmp_path / "o"), num_proc=1))
    texts = [f"Story number {i}.".encode() for i in range(100_000)]
    texts[70_000] = b"caf\xe9"
    pq.write_table(pa.table({"text": pa.array(texts, pa.binary()).view(pa.string())}), tmp_path / "s.parquet",
                   row_group_size=16_384)
    with pytest.raises(TinyStoriesError, match=r"s.parquet: row 70000: not valid UTF-8"):
        prepare(PrepareConfig(source=str(tmp_path / "s.parquet"), output=str(tmp_path / "o"), num_proc=1))


def test_an_edited_source_is_never_served_from_the_cache(tmp_path, sample_stories):
    """Issue input 7 through prepare: same size, old modification time restored, same cache folder."""
    path = tmp_path / "s.jsonl"
    stories = sample_stories[:20]
    path.write_text("".join(json.dumps({"text": s}) + "\n" for s in stories))
    stat = path.stat()
    options = {"output": str(tmp_path / "out"), "num_proc": 1, "vocab_size": 300, "keep_text": True,
               "cache_dir": str(tmp_path / "hf"), "overwrite": True, "validation_fraction": 0.1}
    first = prepare(PrepareConfig(source=str(path), **options))
    edited = [s.replace("Lily", "Emma") for s in stories]  # same length in bytes
    assert edited != stories and sum(map(len, edited)) == sum(map(len, stories))
    path.write_text("".join(json.dumps({"text": s}) + "\n" for s in edited))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = prepare(PrepareConfig(source=str(path), **options))
    texts = list(second.dataset["train"]["text"]) + list(second.dataset["validation"]["text"])
    assert sorted(texts) == sorted(edited) != sorted(list(first.dataset["train"]["text"]) + list(first.dataset["validation"]["text"]))
    assert second.info["stage_seconds"]["source_hash"] >= 0


def test_no_strip_keeps_the_whitespace_and_nothing_else_changes(tmp_path):
    stories = ["\n\n  Once upon a time there was a little cat who liked to sleep in the sun.  ",
               "\ufeffOne day a dog came by and said hello to the cat, who was very happy.\r\n"]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps({"text": s}) + "\n" for s in stories * 5))
    for strip, expected in ((True, [s.lstrip("\ufeff").strip() for s in stories]),
                            (False, [stories[0], stories[1].lstrip("\ufeff").replace("\r\n", "\n")])):
        result = prepare(PrepareConfig(source=str(tmp_path / "s.jsonl"), output=str(tmp_path / f"o{strip}"),
                                       num_proc=1, vocab_size=300, keep_text=True, strip=strip, validation_fraction=0.2))
        assert set(result.dataset["train"]["text"]) | set(result.dataset["validation"]["text"]) == set(expected)
        assert result.info["config"]["strip"] is strip
