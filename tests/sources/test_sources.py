"""The `sources` package piece by piece: the normalising function, the V2 reader, layouts and split names,
the readers' errors and positions, and the cache key. End-to-end invariance over layouts: test_formats.py."""
import gzip
import json
import os
import random
import re
import sys

import datasets
import huggingface_hub
import processes
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE_EOT, SAMPLE_JSONL

from tinystories_hf import TinyStoriesError, load_stories
from tinystories_hf.sources import DEMO_SPLITS, find_layout, normalize_stories, read_eot_stories, txt
from tinystories_hf.sources.normalize import InvalidText
from tinystories_hf.stream import stream_stories

EOT = "<|endoftext|>"
# Every character Python's str.isspace() calls whitespace, plus characters that look like it but are not.
SPACES = [chr(c) for c in range(0x3001) if chr(c).isspace()]
NOT_SPACES = ["\u200b", "\u2060", "\ufeff", "\x00", "x", "é", "“"]


def _texts(ds):
    return list(ds["text"])


def _reference_normalize(text, strip=True):
    """The contract, written plainly in Python."""
    if text is None:
        return None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.removeprefix("\ufeff")
    return text.strip() if strip else text


def _reference_v2(data: bytes):
    """A line-by-line V2 reader (lines end at \\r\\n, \\r or \\n): the independent reference for the block
    reader."""
    text = data.decode("utf-8")
    text = text.removeprefix("\ufeff")
    stories, lines = [], []
    for line in re.split("\r\n|\r|\n", text):
        if line.strip() == EOT:
            stories.append(_reference_normalize("\n".join(lines)))
            lines = []
        else:
            lines.append(line)
    if "\n".join(lines).strip():
        stories.append(_reference_normalize("\n".join(lines)))
    return stories


def test_normalize_matches_the_contract_on_random_and_edge_stories(sample_stories):
    rng = random.Random(0)
    pieces = SPACES + NOT_SPACES + ["\r\n", "\r", "\n\n", EOT, "Once upon a time.", " ", "日本語"]
    texts = ["", " ", "\ufeff", "\ufeff\ufeff x", " \ufeffx", None, "a\r\nb\rc", *sample_stories[:50]]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    for strip in (True, False):
        got, literal = normalize_stories(pa.array(texts, pa.string()), strip=strip)
        expected = [_reference_normalize(t, strip) for t in texts]
        assert got.to_pylist() == expected
        assert literal.to_pylist() == [t is not None and EOT in t for t in expected]
    # every whitespace character is stripped at either end, nothing else is
    for ch in SPACES + NOT_SPACES:
        got, _ = normalize_stories(pa.array([ch + "story" + ch]))
        assert got.to_pylist() == [_reference_normalize(ch + "story" + ch)], hex(ord(ch))


def test_normalize_takes_every_string_type_and_names_the_bad_row():
    for column in (pa.array([" a ", None], pa.large_string()), pa.array([" a ", None]).dictionary_encode()):
        assert normalize_stories(column)[0].to_pylist() == ["a", None]
    assert normalize_stories(pa.nulls(3))[0].to_pylist() == [None] * 3
    bad = pa.array([b"ok", b"ok", b"caf\xe9"], pa.binary()).view(pa.string())
    with pytest.raises(InvalidText) as error:
        normalize_stories(bad)
    assert error.value.row == 2


def _v2_file(rng, n):
    """Random V2 text: separators with whitespace, LF, CRLF and lone CR line endings, literal <|endoftext|>
    inside lines, empty stories, blank lines, and sometimes a last story without separator."""
    words = ["Once", "upon", "a", "time", EOT, "  ", "\t", "é", "\u00a0", "\ufeff"]
    out = ["\ufeff"] if rng.random() < 0.5 else []
    for _ in range(n):
        for _ in range(rng.randint(0, 3)):
            out.append(" ".join(rng.choice(words) for _ in range(rng.randint(0, 6)))
                       + rng.choice(["\n", "\r\n", "\r"]))
        out.append(rng.choice([" ", "", "\t"]) + EOT + rng.choice(["", " ", "\t"]) + rng.choice(["\n", "\r\n", "\r"]))
    if rng.random() < 0.5:
        out.append("Last story without separator.")
    return "".join(out).encode()


@pytest.mark.parametrize("seed", range(4))
def test_v2_block_reader_matches_a_line_reader_across_blocks_and_ranges(seed, tmp_path, monkeypatch):
    rng = random.Random(seed)
    data = _v2_file(rng, 300)
    path = tmp_path / "v2.txt"
    path.write_bytes(data)
    expected = _reference_v2(data)
    for block in (7, 64, 1 << 20):  # blocks cut inside separators, lines and stories
        monkeypatch.setattr(txt, "BLOCK_BYTES", block)
        assert [r["text"] for r in read_eot_stories([path])] == expected
        ranges = txt.eot_ranges(path, shard_bytes=512)
        assert len(ranges) > 3 and [r["text"] for r in txt.read_eot_ranges(ranges)] == expected


def test_gzipped_v2_text_gives_the_stories_of_the_text_and_a_damaged_one_is_one_line(tmp_path):
    data = _v2_file(random.Random(7), 200)
    (tmp_path / "v2.txt.gz").write_bytes(gzip.compress(data))
    assert [r["text"] for r in read_eot_stories([tmp_path / "v2.txt.gz"])] == _reference_v2(data)
    stories, info = load_stories(str(tmp_path / "v2.txt.gz"), num_proc=2, validation_fraction=0.1)
    assert info.kind == "txt" and sorted(_texts(stories["train"]) + _texts(stories["validation"])) == \
        sorted(t for t in _reference_v2(data))
    (tmp_path / "cut.txt.gz").write_bytes(gzip.compress(data)[:-12])
    with pytest.raises(TinyStoriesError, match=r"^could not read \S*cut.txt.gz: EOFError: Compressed file ended"):
        load_stories(str(tmp_path / "cut.txt.gz"))


def test_v2_separator_rules(tmp_path):
    path = tmp_path / "v2.txt"
    path.write_bytes(b"\xef\xbb\xbfFirst story.\r\nSecond line.\r\n<|endoftext|>\r\n<|endoftext|>\n  Third  \n"
                     b" \t<|endoftext|> \n<|endoftext|>x is text\nand <|endoftext|> too\n<|endoftext|>\n"
                     b"Last story without separator.\n")
    assert [r["text"] for r in read_eot_stories([path])] == [
        "First story.\nSecond line.", "", "Third", "<|endoftext|>x is text\nand <|endoftext|> too",
        "Last story without separator."]
    assert [r["text"] for r in read_eot_stories([path], strip=False)] == [
        "First story.\nSecond line.", "", "  Third  ", "<|endoftext|>x is text\nand <|endoftext|> too",
        "Last story without separator."]  # the last line's ending is not the story's, separator or not


def test_v2_line_endings_are_lf_crlf_and_lone_cr_and_unicode_separators_are_text(tmp_path):
    """A lone CR ends a line as LF and CRLF do (the contract turns all three into LF), before a separator too;
    U+2028 and U+0085 are text, kept inside a story."""
    path = tmp_path / "v2.txt"
    path.write_bytes("One.\r<|endoftext|>\nTwo,\rstill two.\r<|endoftext|>\rThree\u2028and\u0085three.\r\n"
                     "<|endoftext|>\r\n\rFour.\n\r<|endoftext|>\r".encode())
    expected = ["One.", "Two,\nstill two.", "Three\u2028and\u0085three.", "Four."]
    assert [r["text"] for r in read_eot_stories([path])] == expected
    assert [r["text"] for r in read_eot_stories([path], strip=False)] == \
        ["One.", "Two,\nstill two.", "Three\u2028and\u0085three.", "\nFour.\n"]
    cr_only = tmp_path / "cr.txt"  # old Mac line endings: 40 stories, not an error
    cr_only.write_bytes("".join(f"Story {i}.\r{EOT}\r" for i in range(40)).encode())
    assert [r["text"] for r in read_eot_stories([cr_only])] == [f"Story {i}." for i in range(40)]


@pytest.mark.parametrize("content, found", [
    ("\n".join(f"Story {i}." for i in range(40)) + "\n", (r"no line holds only <\|endoftext\|> \(40 lines, no "
     r"separator\): not TinyStoriesV2 text; .*jq -cR")),
    (EOT.join(f"Story {i}." for i in range(40)), (r"no line holds only <\|endoftext\|>, but the text holds it 39 "
     r"times inside lines .*put each separator on its own line")),
    ("".join(f"Story {i}.\u2028{EOT}\u2028" for i in range(40)), (r"no line holds only <\|endoftext\|>: the text "
     r"holds it 40 times beside Unicode line separators \(U\+2028, U\+2029 or U\+0085\), which are text")),
    (" \n\t\n", r"the file holds no stories \(only whitespace\); remove it"),
    (f"Story.\n{EOT}\n".encode("utf-16-le"), r"the file is UTF-16LE, not UTF-8; re-encode it \(e.g. iconv -f utf-16le"),
], ids=["one-per-line", "inline-literals", "unicode-separators", "blank", "utf16le"])
@pytest.mark.parametrize("as_folder", [False, True])
def test_v2_file_without_a_separator_line_is_one_error_naming_it(tmp_path, content, found, as_folder):
    folder = tmp_path / "v2"
    folder.mkdir()
    (folder / "train.txt").write_bytes(content if isinstance(content, bytes) else content.encode())
    (folder / "valid.txt").write_text(f"A story.\n{EOT}\n")
    with pytest.raises(TinyStoriesError, match=rf"^{folder / 'train.txt'}: {found}"):
        load_stories(str(folder if as_folder else folder / "train.txt"), num_proc=1)


def test_demo_is_deterministic_and_has_both_splits():
    a, info = load_stories("demo")
    b, _ = load_stories("demo")
    assert (info.kind, info.layout) == ("demo", "demo")
    assert {s: a[s].num_rows for s in a} == DEMO_SPLITS
    assert _texts(a["train"]) == _texts(b["train"])
    assert len(set(_texts(a["train"]))) > 2000  # varied stories, not one template repeated


def test_jsonl_and_eot_txt_give_the_same_real_stories(sample_stories, tmp_path):
    assert [r["text"] for r in read_eot_stories([SAMPLE_EOT])] == sample_stories
    from_txt, info_txt = load_stories(str(SAMPLE_EOT))
    # Two processes convert byte ranges of the one file (4.7 MB: 4 ranges): same stories, same order.
    parallel, _ = load_stories(str(SAMPLE_EOT), num_proc=2, cache_dir=str(tmp_path / "cache"))
    assert list((tmp_path / "cache").rglob("*-00001-of-00002.arrow"))
    from_json, info_json = load_stories(str(SAMPLE_JSONL))
    assert (info_txt.kind, info_json.kind) == ("txt", "json") and info_json.layout == "file"
    for split in ("train", "validation"):
        assert _texts(from_txt[split]) == _texts(from_json[split]) == _texts(parallel[split])
    assert sorted(_texts(from_json["train"]) + _texts(from_json["validation"])) == sorted(sample_stories)


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


def _touch(folder, *names):
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"Story of {name}.\n{EOT}\n")
    return folder


@pytest.mark.parametrize("names, splits", [
    (["TinyStoriesV2-GPT4-train.txt", "TinyStoriesV2-GPT4-valid.txt"], {"train": 1, "validation": 1}),
    (["train.txt", "valid.txt", "test.txt"], {"train": 1, "validation": 1, "test": 1}),
    (["train/a.txt", "train/b.txt", "valid/a.txt"], {"train": 2, "validation": 1}),
    (["my_train_01.txt", "my_dev_01.txt", "my_eval_01.txt"], {"train": 1, "validation": 1, "test": 1}),
    (["stories.txt", "more.txt"], {"train": 2}),  # no split name: everything is train
    (["data/train-00000-of-00001.txt", "data/holdout-00000-of-00001.txt"], {"train": 1, "holdout": 1}),
    (["training/x.txt", "validation/x.txt", "testing/x.txt"], {"train": 1, "validation": 1, "test": 1}),
    (["training.txt", "evaluation.txt", "eval.txt"], {"train": 1, "test": 2}),
    (["train/a.txt", "dev/b.txt", "dev/c.txt"], {"train": 1, "validation": 2}),
    (["retrain.txt", "devotion.txt", "contest.txt"], {"train": 3}),  # a split name inside a word names none
    (["train.txt", "retrain.txt", "interval.txt", "valid.txt"], {"train": 1, "validation": 1}),  # 2 in no split
    (["train-10.txt", "train-2.txt", "b-train.txt", "a_train.txt", "valid.txt"], {"train": 4, "validation": 1}),
    (["TRAIN.txt", "stories.txt"], {"train": 2}),  # upper case names train and is train
    (["train/valid.txt", "train/a.txt"], {"train": 2}),  # folder names decide; valid.txt names train too
    (["data/train-00000-of-00001.txt", "data/train_sft-00000-of-00001.txt"], {"train": 1, "train_sft": 1}),
    ([".hidden/valid.txt", ".valid.txt", "__MACOSX/valid.txt", "train.txt"], {"train": 1}),
])
def test_folder_splits_follow_datasets_data_files_rules(tmp_path, names, splits):
    layout = find_layout(str(_touch(tmp_path / "src", *names)))
    assert (layout.layout, layout.format) == ("folder", "txt")
    assert {split: len(files) for split, files in layout.data_files.items()} == splits
    # the same names, read by datasets itself (its text builder), give the same splits
    assert list(datasets.load_dataset(str(tmp_path / "src"))) == list(splits)
    for files in layout.data_files.values():  # each split's files in path order (code point order)
        names = [os.path.relpath(f, tmp_path / "src") for f in files]
        assert names == sorted(names)


@pytest.mark.parametrize("names, found", [
    (["Train.txt", "Valid.txt"], (r"Valid.txt: its name says split 'validation', but datasets' rules read it as "
     r"split 'train' \(datasets matches split names in lower case only\); write the split name in lower case")),
    (["train.txt", "VALID.txt"], (r"VALID.txt: its name says split 'validation', but datasets' rules read it as no "
     r"split \(datasets matches split names in lower case only\)")),
    (["Train/a.txt", "Val/a.txt"], r"Val/a.txt: its name says split 'validation', .* as split 'train'"),
    (["train/a.txt", "valid.txt"], (r"valid.txt: its name says split 'validation', but datasets' rules read it as "
     r"no split \(folder names decide the splits here\); rename or move it")),
    (["train/a.txt", "train.txt", "valid/a.txt"], r"train.txt: its name says split 'train', .* no split"),
    (["data/train.txt", "valid/x.txt"], r"data/train.txt: its name says split 'train', .* no split \(folder names"),
    (["data/train-00000-of-00001.txt", "valid.txt"], r"valid.txt: .* no split \(the data/\{split\}-\* shards decide"),
], ids=["Valid-read-as-train", "VALID-in-no-split", "Val-folder", "valid-file-beside-folders",
        "train-file-beside-train-folder", "data-folder-beside-valid-folder", "valid-file-beside-data-shards"])
def test_a_name_that_says_another_split_than_the_rules_is_an_error(tmp_path, names, found):
    """Never read against the file's name: the validation stories trained on, or a validation split carved
    while the user's own is left out."""
    with pytest.raises(TinyStoriesError, match=rf"^{tmp_path / 'src'}/{found}"):
        find_layout(str(_touch(tmp_path / "src", *names)))
    # files of another format than the splits' are only listed as not read (a Hub clone's .txt beside data/)
    layout = find_layout(str(_touch(tmp_path / "ok", "train.txt", "valid.txt", "data/train-00000-of-00001.jsonl")))
    assert (layout.format, layout.ignored) == ("json", ["train.txt", "valid.txt"])


@pytest.mark.parametrize("name", ["st*ries", "stories[2023]", "st?ries"])
def test_glob_characters_in_the_folder_path_match_only_themselves(tmp_path, name):
    """datasets joins the folder to its glob patterns: `st*ries` once read a sibling `stories/` folder too, and
    `stories[2023]` was 'a folder without data files'."""
    _touch(tmp_path, "stories/train.txt", f"{name}/train.txt", f"{name}/valid.txt")
    layout = find_layout(str(tmp_path / name))
    assert layout.data_files == {"train": [str(tmp_path / name / "train.txt")],
                                 "validation": [str(tmp_path / name / "valid.txt")]}


CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: "stories/part-*.txt"
  - split: validation
    path: "stories/held-out.txt"
{more}---
# Stories
"""


def test_a_readme_configs_header_declares_the_splits_as_for_load_dataset(tmp_path):
    """The YAML header datasets and the Hub read first: the files it names, not the ones the name rules find."""
    src = _touch(tmp_path / "src", "stories/part-1.txt", "stories/part-0.txt", "stories/held-out.txt",
                 "stories/train.txt")
    (src / "README.md").write_text(CARD.format(more=""))
    layout = find_layout(str(src))
    assert {split: [os.path.relpath(f, src) for f in files] for split, files in layout.data_files.items()} == \
        {"train": ["stories/part-0.txt", "stories/part-1.txt"], "validation": ["stories/held-out.txt"]}
    assert layout.ignored == ["stories/train.txt"]
    assert {split: len(ds) for split, ds in datasets.load_dataset(str(src)).items()} == {"train": 4, "validation": 2}
    (src / "README.md").write_text(CARD.format(more="- config_name: other\n  data_dir: stories\n")
                                   .replace("config_name: default", "config_name: first"))
    with pytest.raises(TinyStoriesError, match=r"README.md: it declares configs first, other and none is the default; "
                                               r"mark one 'default: true'"):
        find_layout(str(src))
    (src / "README.md").write_text("---\nconfigs: [\n---\n")
    with pytest.raises(TinyStoriesError, match=r"README.md: its configs cannot be read \(while parsing"):
        find_layout(str(src))
    (src / "README.md").write_text("---\nconfigs:\n- config_name: default\n  data_dir: stories\n---\n")
    assert find_layout(str(src)).data_files == {"train": [str(src / "stories/train.txt")]}  # the rules, in data_dir
    (src / "README.md").write_text("# Stories\n\nNo YAML header: the name rules decide.\n")
    assert find_layout(str(src)).data_files == {"train": [str(src / "stories/train.txt")]}


def test_links_and_lfs_pointers_in_a_folder_are_errors(tmp_path):
    elsewhere = _touch(tmp_path / "elsewhere", "a.txt", "b/c.txt")
    src = _touch(tmp_path / "src", "train.txt")
    (src / "valid.txt").symlink_to(elsewhere / "a.txt")  # a link to a file is read
    assert find_layout(str(src)).data_files["validation"] == [str(src / "valid.txt")]
    (src / "test.txt").symlink_to(elsewhere / "gone.txt")
    with pytest.raises(TinyStoriesError, match=rf"^{src / 'test.txt'}: a broken symbolic link \(to \S*gone.txt\); "):
        find_layout(str(src))
    (src / "test.txt").unlink()
    (src / "test").symlink_to(elsewhere / "b")
    with pytest.raises(TinyStoriesError, match=rf"^{src / 'test'}: a symbolic link to a folder \(\S*b\), which "
                                               r"datasets does not read into"):
        find_layout(str(src))
    (src / "test").unlink()
    (src / "valid.txt").unlink()
    (src / "valid.txt").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 1\n")
    with pytest.raises(TinyStoriesError, match=r"valid.txt: a Git LFS pointer, not the data; fetch the files"):
        find_layout(str(src))


def test_folder_with_mixed_or_non_story_files_is_one_error_naming_them(tmp_path):
    _touch(tmp_path / "mixed", "stories.txt")
    (tmp_path / "mixed" / "meta.json").write_text('{"a": 1}\n')
    with pytest.raises(TinyStoriesError, match=r"mixed holds files of more than one format in its splits: 1 JSON "
                                               r"\(meta.json\); 1 TinyStoriesV2 text \(stories.txt\); keep one story"):
        load_stories(str(tmp_path / "mixed"))
    _touch(tmp_path / "csv", "train.txt")
    (tmp_path / "csv" / "valid.csv").write_text("text\nA story.\n")
    with pytest.raises(TinyStoriesError, match=r"holds files of more than one format .*1 .csv, not a story format "
                                               r"\(valid.csv\)"):
        load_stories(str(tmp_path / "csv"))
    _touch(tmp_path / "both", "train_valid.txt")
    with pytest.raises(TinyStoriesError, match=r"train_valid.txt: its name matches both split 'train' and split "
                                               r"'validation'; rename it"):
        load_stories(str(tmp_path / "both"))


def test_eot_cache_sees_an_edited_file(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("One.\n<|endoftext|>\nTwo.\n<|endoftext|>\n")
    load_stories(str(path), validation_fraction=0.5)  # caches the first version
    path.write_text("Three.\n<|endoftext|>\nFour.\n<|endoftext|>\nFive.\n<|endoftext|>\n")
    second, _ = load_stories(str(path), validation_fraction=0.5)
    assert sorted(_texts(second["train"]) + _texts(second["validation"])) == ["Five.", "Four.", "Three."]


@pytest.mark.parametrize("name, write", [
    ("s.txt", lambda p, s: p.write_text("".join(f"{t}\n{EOT}\n" for t in s))),
    ("s.parquet", lambda p, s: pq.write_table(pa.table({"text": s}), p)),
    ("s.jsonl", lambda p, s: p.write_text("".join(json.dumps({"text": t}) + "\n" for t in s))),
])
def test_cache_key_is_the_content_not_size_and_mtime(tmp_path, name, write):
    """Issue input 7: an edit of the same size with the old mtime restored (cp -p, rsync -t, touch -r)."""
    path = tmp_path / name
    write(path, ["Story one.", "Story two.", "Story six."])
    stat = path.stat()
    first, info = load_stories(str(path), validation_fraction=0.4, cache_dir=str(tmp_path / "hf"))
    assert "Story six." in _texts(first["train"]) + _texts(first["validation"])
    write(path, ["Story one.", "Story two.", "Story ten."])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    second, again = load_stories(str(path), validation_fraction=0.4, cache_dir=str(tmp_path / "hf"))
    assert "Story ten." in _texts(second["train"]) + _texts(second["validation"])
    assert info.content_hash != again.content_hash


@pytest.mark.parametrize("bad, message", [
    (b'{"text": "cut', r"line 5: not valid JSON \(Unterminated string starting at column 10\)"),
    (b'["a list"]', r"line 5: an array, not a JSON object"),
    (b'{"text": 12}', r"line 5: 'text' holds a number, not a string"),
    (b'{"text": "caf\\ud800"}', r"line 5: 'text' holds a lone surrogate escape \(\\ud800\)"),
    (b'{"text": "caf\xe9"}', r"line 5: not valid UTF-8 \(byte 14 of the line\)"),
    (b'{"text": "a", "id": 1, "text": "b"}', r"line 5: 'text' is given more than once in the object"),
    (b'{"text": "a"} {"text": "b"}', r"line 5: not valid JSON \(Extra data at column 15\)"),  # two on a line
    (b'{"text":\n "a"}', r"line 5: not valid JSON \(Expecting value at column 9\)"),  # one across lines
])
def test_json_lines_errors_name_the_line(tmp_path, bad, message):
    """Lines counted as an editor counts them: a BOM, blank lines and CRLF endings before the bad one."""
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "One."}\r\n\r\n{"text": "Two.", "id": 2}\n\n' + bad + b"\n")
    with pytest.raises(TinyStoriesError, match=rf"^{path}: {message}"):
        load_stories(str(path))


def test_json_positions_count_lone_cr_line_endings_and_only_the_story_must_be_utf8(tmp_path):
    """pyarrow reads a lone CR as a line ending; so do the positions. Bytes that are not UTF-8 in a field that
    is not read are no error, in JSON Lines and in an array alike; in the story they are, at their line or item."""
    lines = [b'{"text": "One.", "id": "caf\xe9"}', b'{"text": "Two."}', b'{"text": 3}']
    (tmp_path / "cr.jsonl").write_bytes(b"\r".join(lines) + b"\r")
    with pytest.raises(TinyStoriesError, match=r"cr.jsonl: line 3: 'text' holds a number"):
        load_stories(str(tmp_path / "cr.jsonl"))
    (tmp_path / "ok.jsonl").write_bytes(b"\r".join(lines[:2]) + b"\r")
    (tmp_path / "ok.json").write_bytes(b"[" + b",\r".join(lines[:2]) + b"]")
    for name in ("ok.jsonl", "ok.json"):
        stories, _ = load_stories(str(tmp_path / name), validation_fraction=0.5)
        assert sorted(_texts(stories["train"]) + _texts(stories["validation"])) == ["One.", "Two."]
    (tmp_path / "bad.jsonl").write_bytes(b'{"text": "One."}\r{"text": "caf\xe9"}\r')
    with pytest.raises(TinyStoriesError, match=r"bad.jsonl: line 2: not valid UTF-8 \(byte 14 of the line\)"):
        load_stories(str(tmp_path / "bad.jsonl"))
    (tmp_path / "bad.json").write_bytes(b'[{"text": "One.", "id": 1, "text": "Two."}]')
    with pytest.raises(TinyStoriesError, match=r"bad.json: item 0: 'text' is given more than once"):
        load_stories(str(tmp_path / "bad.json"))
    (tmp_path / "bad.json").write_bytes(b'[{"text": "One."}, {"text": "caf\xe9"}]')
    with pytest.raises(TinyStoriesError, match=r"bad.json: item 1: not valid UTF-8 \('text' holds byte 0xe9\)"):
        load_stories(str(tmp_path / "bad.json"))


def test_invalid_utf8_in_a_later_parse_chunk_names_its_line(tmp_path):
    """A 3 MB block is parsed in 1 MB chunks: the bad story's row is counted from its chunk's first row, and
    blank lines (every 1000th) and CRLF endings are counted as an editor counts them."""
    lines = [json.dumps({"text": f"Story number {i} is short."}).encode() for i in range(60_000)]
    for i in range(999, 60_000, 1000):
        lines[i] = b""
    lines[50_000] = b'{"text": "caf\xe9 au lait"}'
    (tmp_path / "s.jsonl").write_bytes(b"\r\n".join(lines) + b"\r\n")
    with pytest.raises(TinyStoriesError, match=r"s.jsonl: line 50001: not valid UTF-8 \(byte 14 of the line\)"):
        load_stories(str(tmp_path / "s.jsonl"))


def test_a_json_line_longer_than_a_parse_chunk_is_read(tmp_path):
    """pyarrow parses a block in chunks of a quarter of it (at least 1 MB); a 1.5 MB story once failed with
    'straddling object straddles two block boundaries'."""
    long = "Once upon a time " * 90_000  # 1.5 MB
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["A story.", long, "The end."]))
    stories, _ = load_stories(str(path), validation_fraction=0.34)
    assert sorted(_texts(stories["train"]) + _texts(stories["validation"])) == sorted(["A story.", long.strip(),
                                                                                        "The end."])


@pytest.mark.parametrize("name, content, found", [
    ("s.txt", b" \n\t\r\n", r"the file holds no stories \(only whitespace\)"),
    ("s.txt.gz", gzip.compress(b""), r"the file holds no stories \(it is empty\)"),
    ("s.jsonl", b"\n  \r\n\n", r"the file holds no stories \(only blank lines\)"),
    ("s.jsonl.gz", gzip.compress(b""), r"the file holds no stories \(it is empty\)"),
    ("s.json", b" [ ]\n", r"the file holds no stories \(an empty array\)"),
    ("s.parquet", None, r"the parquet file has no rows"),
    ("s.jsonl", "{}".encode("utf-16"), r"the file is UTF-16, not UTF-8; re-encode it"),
    ("s.json", '[{"text": "a"}]'.encode("utf-16-be"), r"the file is UTF-16BE, not UTF-8; re-encode it"),
], ids=["blank-txt", "empty-txt-gz", "blank-jsonl", "empty-jsonl-gz", "empty-array", "no-rows-parquet", "utf16-jsonl",
        "utf16be-json"])
@pytest.mark.parametrize("as_folder", [False, True])
def test_a_shard_without_stories_is_one_error_in_every_format(tmp_path, name, content, found, as_folder):
    """An empty or blank shard of a folder, or a file in a foreign encoding, is named; never 0 rows read on."""
    folder = tmp_path / "src"
    folder.mkdir()
    if content is None:
        pq.write_table(pa.table({"text": pa.array([], pa.string())}), folder / f"train-1-{name}")
    else:
        (folder / f"train-1-{name}").write_bytes(content)
    suffix = name.removeprefix("s")
    zipped = gzip.compress if suffix.endswith(".gz") else bytes
    if suffix.startswith(".txt"):
        (folder / f"train-0{suffix}").write_bytes(zipped(f"A story.\n{EOT}\n".encode()))
    elif suffix == ".parquet":
        pq.write_table(pa.table({"text": ["A story."]}), folder / "train-0.parquet")
    else:
        (folder / f"train-0{suffix}").write_bytes(zipped(b'{"text": "A story."}\n'))
    source = folder if as_folder else folder / f"train-1-{name}"
    with pytest.raises(TinyStoriesError, match=rf"^{folder / f'train-1-{name}'}: {found}"):
        load_stories(str(source), num_proc=1)


def test_invalid_utf8_names_file_line_and_offset(tmp_path):
    path = tmp_path / "bad.txt"
    good = b"Ok story.\n<|endoftext|>\nCaf"
    path.write_bytes(good + b"\xe9 au lait.\n<|endoftext|>\n")
    with pytest.raises(TinyStoriesError, match=rf"bad.txt: line 3: not valid UTF-8 at byte offset {len(good)}; "):
        load_stories(str(path))


STORIES = ["\ufeff  Once upon a time.\r\nThe end. ", None, "Lily ran.\rShe smiled.", " \t ", "日本語の話。"]


@pytest.mark.parametrize("column", [
    pa.array(STORIES, pa.large_string()), pa.array(STORIES).dictionary_encode(), pa.array(STORIES, pa.string_view()),
    pa.array([s and s.encode() for s in STORIES], pa.binary()),  # parquet written without the UTF8 annotation
    pa.array([s and s.encode() for s in STORIES], pa.large_binary()),
    pa.array([s and s.encode() for s in STORIES], pa.binary()).dictionary_encode(),
], ids=["large_string", "dictionary", "string_view", "binary", "large_binary", "dictionary-of-binary"])
def test_parquet_story_column_of_any_text_type_gives_the_same_stories(tmp_path, column):
    pq.write_table(pa.table({"id": range(5), "text": column}), tmp_path / "s.parquet", row_group_size=1)
    expected = [_reference_normalize(s) for s in STORIES]
    assert [r["text"] for r in stream_stories(str(tmp_path / "s.parquet"))] == expected
    stories, _ = load_stories(str(tmp_path / "s.parquet"), validation_fraction=0.2)
    assert sorted(map(str, _texts(stories["train"]) + _texts(stories["validation"]))) == sorted(map(str, expected))


@pytest.mark.parametrize("table, found", [
    (pa.table({"text": pa.array([b"ok", b"ok", b"caf\xe9"], pa.binary())}), r"row 2: not valid UTF-8"),
    (pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"])], names=["text", "text"]),
     r"2 columns are named 'text'; keep one"),
    (pa.table({"text": pa.array([{"story": "a"}])}), r"column 'text' holds struct<story: string>, not text"),
    (pa.table({"text": pa.array([["a"]])}), r"column 'text' holds list<\w+: string>, not text"),
    (pa.table({"text": pa.array([1, 2]).dictionary_encode()}), r"column 'text' holds .*int64.*, not text"),
], ids=["invalid-utf8-binary", "two-text-columns", "struct", "list", "dictionary-of-int"])
def test_parquet_story_column_errors_name_the_file(tmp_path, table, found):
    pq.write_table(table, tmp_path / "s.parquet")
    with pytest.raises(TinyStoriesError, match=rf"^{tmp_path / 's.parquet'}: {found}"):
        load_stories(str(tmp_path / "s.parquet"))


def test_hub_layout_folder_and_parquet_file(tmp_path, sample_stories):
    data = tmp_path / "hub" / "data"
    data.mkdir(parents=True)
    pq.write_table(pa.table({"text": sample_stories[:300]}), data / "train-00000-of-00002.parquet")
    pq.write_table(pa.table({"text": sample_stories[300:600]}), data / "train-00001-of-00002.parquet")
    pq.write_table(pa.table({"text": sample_stories[600:650]}), data / "validation-00000-of-00001.parquet")
    (tmp_path / "hub" / "TinyStories-train.txt").write_text("not read: the data/ shards name the splits\n")
    stories, info = load_stories(str(tmp_path / "hub"))
    assert (info.layout, info.kind, info.validation) == ("folder", "parquet", "source")
    assert info.ignored == ["TinyStories-train.txt"]
    assert _texts(stories["train"]) == sample_stories[:600]
    assert _texts(stories["validation"]) == sample_stories[600:650]

    single, info = load_stories(str(data / "train-00000-of-00002.parquet"), validation_fraction=0.1)
    assert (info.layout, info.kind) == ("file", "parquet")
    assert single["train"].num_rows + single["validation"].num_rows == 300


def test_hub_dataset_id_is_read_through_the_same_formats(tmp_path, sample_stories, monkeypatch):
    """The Hub path offline: datasets' resolution of the repository's files is replaced by a local copy's."""
    data = tmp_path / "repo" / "data"
    data.mkdir(parents=True)
    pq.write_table(pa.table({"text": [f"  {s}\r\n" for s in sample_stories[:200]], "id": range(200)}),
                   data / "train-00000-of-00001.parquet")
    pq.write_table(pa.table({"text": sample_stories[200:220]}), data / "test-00000-of-00001.parquet")
    files = datasets.data_files.DataFilesDict.from_patterns(
        datasets.data_files.get_data_patterns(str(tmp_path / "repo")), base_path=str(tmp_path / "repo"))

    class Builder:
        class config:
            data_files = files

    monkeypatch.setattr(datasets, "load_dataset_builder", lambda repo_id, **kwargs: Builder)
    monkeypatch.setattr("tinystories_hf.sources.hub.require_hub", lambda what, fix: None)  # no Hub to probe here
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # the tests run offline: "online" now
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    cache = str(tmp_path / "hf")
    stories, info = load_stories("someone/tiny-stories", validation_fraction=0.1, cache_dir=cache)
    assert (info.layout, info.kind, list(stories)) == ("hub", "parquet", ["train", "validation", "test"])
    assert sorted(_texts(stories["train"]) + _texts(stories["validation"])) == sorted(sample_stories[:200])
    assert _texts(stories["test"]) == sample_stories[200:220]
    streamed, _ = load_stories("someone/tiny-stories", streaming=True, cache_dir=cache)
    assert [r["text"] for r in streamed["train"]] == sample_stories[:200]
    # Offline, the files listed by the last online run are read again; never read online: one line.
    monkeypatch.setattr(datasets, "load_dataset_builder", None)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    again, _ = load_stories("someone/tiny-stories", validation_fraction=0.1, cache_dir=cache)
    assert {s: _texts(d) for s, d in again.items()} == {s: _texts(d) for s, d in stories.items()}
    with pytest.raises(TinyStoriesError, match=r"could not load Hub dataset 'someone/other' \(offline: HF_HUB_OFFLINE"
                                               r"=1, and it was never read online with this cache"):
        load_stories("someone/other", cache_dir=cache)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)

    def several_configs(repo_id, **kwargs):
        raise ValueError("Config name is missing.\nPlease pick one among the available configs: ['a', 'b']")

    monkeypatch.setattr(datasets, "load_dataset_builder", several_configs)
    with pytest.raises(TinyStoriesError, match=r"^could not load Hub dataset 'someone/configs': Config name is "
                                               r"missing.; download the files of one config"):
        load_stories("someone/configs", cache_dir=cache)


def test_text_column_option_and_missing_column(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(json.dumps({"story": f"Story {i}.", "id": i}) for i in range(20)))
    with pytest.raises(TinyStoriesError, match=r"s.jsonl: no column 'text' \(columns found: story, id\); pass "
                                               r"text_column NAME"):
        load_stories(str(path))
    stories, _ = load_stories(str(path), text_column="story", validation_fraction=0.1)
    assert stories["train"].column_names == ["text"]
    assert stories["train"].num_rows == 18


def test_text_column_of_v2_text_and_demo_is_text_only():
    for source in (str(SAMPLE_EOT), "demo"):
        with pytest.raises(TinyStoriesError, match=r"no column 'story' \(columns found: text"):
            load_stories(source, text_column="story")


def test_missing_path_and_unsupported_file(tmp_path):
    with pytest.raises(TinyStoriesError, match="nothere.jsonl' not found"):
        load_stories(str(tmp_path / "nothere.jsonl"))
    (tmp_path / "s.csv").write_text("text\nhello\n")
    with pytest.raises(TinyStoriesError, match="unsupported file type"):
        load_stories(str(tmp_path / "s.csv"))


def test_unreachable_hub_is_one_line_error(tmp_path):
    """The real hub code path, here offline (the tests set HF_HUB_OFFLINE=1) and never read online: exit
    non-zero, one line naming the source, no traceback."""
    run = processes.run([sys.executable, "-m", "tinystories_hf.pipeline", "--source", "roneneldan/TinyStories",
                          "--output", str(tmp_path / "out")], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: could not load Hub dataset 'roneneldan/TinyStories'")
    assert "--source PATH" in last and "--source demo" in last
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()
