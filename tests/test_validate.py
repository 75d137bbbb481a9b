"""tinystories-validate and load_prepared's cheap checks, on real damage done to a prepared folder."""
import json
import re
import shutil

import datasets
import pytest

from tinystories_hf import PrepareConfig, TinyStoriesError, load_prepared, prepare
from tinystories_hf.store import tree_sha256
from tinystories_hf.validate import main, validate_prepared

TRAIN_ARROW = "train/data-00000-of-00001.arrow"
VALIDATION_ARROW = "validation/data-00000-of-00001.arrow"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    out = tmp_path_factory.mktemp("validate") / "demo"
    prepare(PrepareConfig(source="demo", output=str(out), vocab_size=300, num_proc=1))
    return out


@pytest.fixture
def folder(pristine, tmp_path):
    return shutil.copytree(pristine, tmp_path / "demo")


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.err, captured.err
    return lines[0]


def _flip(path, fraction: float) -> None:
    data = bytearray(path.read_bytes())
    data[min(len(data) - 1, int(len(data) * fraction))] ^= 0x01
    path.write_bytes(bytes(data))


def _rewrite_train(folder, change=None, features=None) -> None:
    """Replace the train split by `change(row, index)` applied to every row (or a cast), saved the datasets way."""
    train = datasets.load_from_disk(str(folder / "train"))
    changed = train.map(change, with_indices=True) if change else train.cast(features)
    changed.save_to_disk(str(folder / "train-new"))
    shutil.rmtree(folder / "train")
    (folder / "train-new").rename(folder / "train")
    _rehash(folder)


def _rehash(folder) -> None:
    """Record the changed files' sha256 in prepare_info.json, as someone editing the folder on purpose would."""
    path = folder / "prepare_info.json"
    info = json.loads(path.read_text())
    info["data_files"] = {name: digest for name, digest in tree_sha256(folder).items()
                          if name.split("/")[0] in ("train", "validation") or name == "dataset_dict.json"}
    path.write_text(json.dumps(info))


def test_intact_folder_passes_with_counts_taken_from_the_data(folder, capsys):
    summary = validate_prepared(folder)
    info = json.loads((folder / "prepare_info.json").read_text())
    for split in ("train", "validation"):
        ids = datasets.load_from_disk(str(folder / split))["input_ids"]
        rows = list(ids)
        assert summary["splits"][split] == {"rows": len(rows), "tokens": sum(map(len, rows)),
                                            "unk_tokens": sum(r.count(1) for r in rows)}
        assert summary["splits"][split]["tokens"] == info["splits"][split]["tokens"]
    assert summary["hashed_files"] == len(info["data_files"]) + len(info["tokenizer_files"]) == 10
    assert main([str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"ok {folder}: train 2,966 rows") and "10 files match" in out[0]


@pytest.mark.parametrize("damage, named, what", [
    (lambda f: _flip(f / TRAIN_ARROW, 0.0), TRAIN_ARROW, "has changed"),
    (lambda f: _flip(f / TRAIN_ARROW, 0.5), TRAIN_ARROW, "has changed"),
    (lambda f: _flip(f / TRAIN_ARROW, 0.99), TRAIN_ARROW, "has changed"),
    (lambda f: _flip(f / TRAIN_ARROW, 1.0), TRAIN_ARROW, "has changed"),
    (lambda f: _flip(f / VALIDATION_ARROW, 0.3), VALIDATION_ARROW, "has changed"),
    (lambda f: (f / TRAIN_ARROW).write_bytes((f / TRAIN_ARROW).read_bytes()[:50_000]), TRAIN_ARROW, "has changed"),
    (lambda f: (f / VALIDATION_ARROW).unlink(), VALIDATION_ARROW, "is missing"),
    (lambda f: _flip(f / "train/state.json", 0.5), "train/state.json", "has changed"),
    (lambda f: _flip(f / "tokenizer/tinystories_vocab.json", 0.7), "tokenizer/tinystories_vocab.json", "has changed"),
    (lambda f: (f / "tokenizer/base/tokenizer.json").write_text(
        (f / "tokenizer/base/tokenizer.json").read_text() + " "), "tokenizer/base/tokenizer.json", "has changed"),
])
def test_damage_is_reported_in_one_line_naming_the_file(folder, capsys, damage, named, what):
    damage(folder)
    assert main([str(folder)]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: {folder / named} {what}") and "re-create it" in line


def _swap_two_vocabulary_entries(folder) -> None:
    path = folder / "tokenizer/tinystories_vocab.json"
    vocab = json.loads(path.read_text())
    vocab["base_ids"][2], vocab["base_ids"][3] = vocab["base_ids"][3], vocab["base_ids"][2]
    path.write_text(json.dumps(vocab))


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / TRAIN_ARROW).unlink(), f"{TRAIN_ARROW}: missing"),
    (_swap_two_vocabulary_entries, "vocabulary hash differs"),
    (lambda f: _flip(f / TRAIN_ARROW, 0.0), "cannot be loaded"),
    (lambda f: _rewrite_train(f, features=datasets.Features(
        input_ids=datasets.List(datasets.Value("int32")), length=datasets.Value("int32"))),
     "input_ids is List(Value('int32')), not List(Value('uint16'))"),
])
def test_load_prepared_runs_the_cheap_checks(folder, damage, message):
    damage(folder)
    with pytest.raises(TinyStoriesError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_prepared(folder)


def _set_id(position: int, value: int):
    def change(row, index):
        if index == 5:
            row["input_ids"][position] = value
        return row
    return change


def _edit_info(folder, edit) -> None:
    path = folder / "prepare_info.json"
    info = json.loads(path.read_text())
    edit(info)
    path.write_text(json.dumps(info))


@pytest.mark.parametrize("damage, message", [
    (lambda f: _rewrite_train(f, _set_id(3, 300)), "train: row 5 has an id >= vocab_size 300"),
    (lambda f: _rewrite_train(f, _set_id(0, 0)), "train: row 5 has the EOS id 0 inside the story"),
    (lambda f: _rewrite_train(f, lambda row, i: dict(row, length=row["length"] + (i == 7))),
     "train: row 7 has a length column that differs from its number of ids"),
    (lambda f: _edit_info(f, lambda info: info["splits"]["validation"].update(tokens=1)),
     "validation: 31179 tokens but prepare_info.json records 1"),
    (lambda f: _edit_info(f, lambda info: info["splits"]["train"].update(unk_tokens=5)),
     "train: 0 unk_tokens but prepare_info.json records 5"),
])
def test_content_checks_name_the_split_and_row(folder, capsys, damage, message):
    damage(folder)
    capsys.readouterr()
    assert main([str(folder), "--no-hash-files"]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: {folder}/{message}"), line


def test_lengths_are_checked_against_the_recorded_min_and_max(folder, capsys):
    _edit_info(folder, lambda info: info["config"].update(min_length=100))
    assert main([str(folder)]) == 2
    line = _one_error_line(capsys)
    found = re.fullmatch(rf"error: {folder}/train: row (\d+) has a length outside \[min_length 100, max_length 512\]; "
                         "the data was altered, re-create the folder", line)
    lengths = list(datasets.load_from_disk(str(folder / "train"))["length"])
    row = int(found.group(1))
    assert lengths[row] < 100 and all(length >= 100 for length in lengths[:row])


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "nothing", "is not a folder"),
    (lambda tmp: tmp, "prepare_info.json not found"),
    (lambda tmp: (tmp / "prepare_info.json").write_text("{oops") and tmp, "not valid JSON"),
])
def test_not_a_prepared_folder(tmp_path, capsys, make, message):
    assert main([str(make(tmp_path))]) == 2
    assert message in _one_error_line(capsys)
