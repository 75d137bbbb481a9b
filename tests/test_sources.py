"""Every kind of --source, read into train/validation with a `text` column, and their errors."""
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE_EOT, SAMPLE_JSONL

from tinystories_hf import TinyStoriesError, load_stories
from tinystories_hf.demo import DEMO_SPLITS
from tinystories_hf.sources import read_eot_stories


def _texts(ds):
    return list(ds["text"])


def test_demo_is_deterministic_and_has_both_splits():
    a, info = load_stories("demo")
    b, _ = load_stories("demo")
    assert info.kind == "demo"
    assert {s: a[s].num_rows for s in a} == DEMO_SPLITS
    assert _texts(a["train"]) == _texts(b["train"])
    assert len(set(_texts(a["train"]))) > 2000  # varied stories, not one template repeated


def test_jsonl_and_eot_txt_give_the_same_real_stories(sample_stories, tmp_path):
    rows = list(read_eot_stories([str(SAMPLE_EOT)]))
    assert [r["text"] for r in rows] == sample_stories
    from_txt, info_txt = load_stories(str(SAMPLE_EOT))
    # Two processes convert byte ranges of the one file (4.7 MB: 4 ranges): same stories, same order.
    parallel, _ = load_stories(str(SAMPLE_EOT), num_proc=2, cache_dir=str(tmp_path / "cache"))
    assert list((tmp_path / "cache").rglob("*-00001-of-00002.arrow"))
    from_json, info_json = load_stories(str(SAMPLE_JSONL))
    assert (info_txt.kind, info_json.kind) == ("txt", "json")
    for split in ("train", "validation"):
        assert _texts(from_txt[split]) == _texts(from_json[split]) == _texts(parallel[split])
    assert from_json["train"].num_rows + from_json["validation"].num_rows == len(sample_stories)


def test_carved_validation_is_seeded_disjoint_complete_and_ordered(sample_stories):
    a, info = load_stories(str(SAMPLE_JSONL), validation_fraction=0.05, seed=3)
    b, _ = load_stories(str(SAMPLE_JSONL), validation_fraction=0.05, seed=3)
    c, _ = load_stories(str(SAMPLE_JSONL), validation_fraction=0.05, seed=4)
    assert info.validation.startswith("carved 0.05")
    assert a["validation"].num_rows == round(len(sample_stories) * 0.05)
    assert _texts(a["validation"]) == _texts(b["validation"]) != _texts(c["validation"])
    train, val = _texts(a["train"]), _texts(a["validation"])
    assert sorted(train + val) == sorted(sample_stories)
    position = {s: i for i, s in enumerate(sample_stories)}
    assert [position[s] for s in train] == sorted(position[s] for s in train)  # source order kept


def test_eot_reader_edge_cases(tmp_path):
    path = tmp_path / "v2.txt"
    path.write_bytes(b"First story.\r\nSecond line.\r\n<|endoftext|>\r\n<|endoftext|>\n  Third  \n<|endoftext|>\n"
                     b"Last story without separator.\n")
    assert [r["text"] for r in read_eot_stories([str(path)])] == [
        "First story.\nSecond line.", "", "Third", "Last story without separator."]


def test_eot_folder_splits_by_file_name(tmp_path):
    (tmp_path / "TinyStoriesV2-GPT4-train.txt").write_text("A.\n<|endoftext|>\nB.\n<|endoftext|>\n")
    (tmp_path / "TinyStoriesV2-GPT4-valid.txt").write_text("C.\n<|endoftext|>\n")
    stories, info = load_stories(str(tmp_path))
    assert info.kind == "txt"
    assert _texts(stories["train"]) == ["A.", "B."] and _texts(stories["validation"]) == ["C."]


def test_eot_cache_sees_an_edited_file(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("One.\n<|endoftext|>\nTwo.\n<|endoftext|>\n")
    load_stories(str(path), validation_fraction=0.5)  # caches the first version
    path.write_text("Three.\n<|endoftext|>\nFour.\n<|endoftext|>\nFive.\n<|endoftext|>\n")
    second, _ = load_stories(str(path), validation_fraction=0.5)
    assert sorted(_texts(second["train"]) + _texts(second["validation"])) == ["Five.", "Four.", "Three."]


def test_invalid_utf8_names_file_and_offset(tmp_path):
    path = tmp_path / "bad.txt"
    good = b"Ok story.\n<|endoftext|>\nCaf"
    path.write_bytes(good + b"\xe9 au lait.\n<|endoftext|>\n")
    with pytest.raises(TinyStoriesError, match=rf"bad.txt: not valid UTF-8 at byte offset {len(good)}"):
        load_stories(str(path))


def test_hub_layout_folder_and_parquet_file(tmp_path, sample_stories):
    data = tmp_path / "hub" / "data"
    data.mkdir(parents=True)
    pq.write_table(pa.table({"text": sample_stories[:300]}), data / "train-00000-of-00002.parquet")
    pq.write_table(pa.table({"text": sample_stories[300:600]}), data / "train-00001-of-00002.parquet")
    pq.write_table(pa.table({"text": sample_stories[600:650]}), data / "validation-00000-of-00001.parquet")
    stories, info = load_stories(str(tmp_path / "hub"))
    assert info.kind == "folder" and info.validation == "source"
    assert _texts(stories["train"]) == sample_stories[:600]
    assert _texts(stories["validation"]) == sample_stories[600:650]

    single, info = load_stories(str(data / "train-00000-of-00002.parquet"), validation_fraction=0.1)
    assert info.kind == "parquet"
    assert single["train"].num_rows + single["validation"].num_rows == 300


def test_text_column_option_and_missing_column(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(json.dumps({"story": f"Story {i}.", "id": i}) for i in range(20)))
    with pytest.raises(TinyStoriesError, match=r"no column 'text' \(columns found: story, id\).*--text-column"):
        load_stories(str(path))
    stories, _ = load_stories(str(path), text_column="story", validation_fraction=0.1)
    assert stories["train"].column_names == ["text"]
    assert stories["train"].num_rows == 18


def test_missing_path_and_unsupported_file(tmp_path):
    with pytest.raises(TinyStoriesError, match="nothere.jsonl' not found"):
        load_stories(str(tmp_path / "nothere.jsonl"))
    (tmp_path / "s.csv").write_text("text\nhello\n")
    with pytest.raises(TinyStoriesError, match="unsupported file type"):
        load_stories(str(tmp_path / "s.csv"))


def test_unreachable_hub_is_one_line_error(tmp_path):
    """The real hub code path, here without network: exit non-zero, one line naming the source, no traceback."""
    run = subprocess.run([sys.executable, "-m", "tinystories_hf.pipeline", "--source", "roneneldan/TinyStories",
                          "--output", str(tmp_path / "out")], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: could not load Hub dataset 'roneneldan/TinyStories'")
    assert "--source PATH" in last and "--source demo" in last
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()
