"""tinystories-validate and load_prepared's cheap checks, on real damage done to a prepared folder."""
import json
import re
import shutil

import datasets
import numpy as np
import pyarrow as pa
import pytest

from tinystories_hf import PrepareConfig, TinyStoriesError, load_prepared, prepare
from tinystories_hf.store.folder import tree_sha256
from tinystories_hf.store.validate import main, validate_prepared

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
    """The one `error:` line, the last of stderr; what comes before it is the progress bars' (`\r`-separated)."""
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in err, err
    assert all(line.startswith("validate: ") for line in lines[:-1]), err  # nothing else is printed
    return errors[0]


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
    assert summary["hashed_files"] == len(info["data_files"]) + len(info["tokenizer_files"]) == 12
    capsys.readouterr()
    assert main([str(folder)]) == 0
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"ok {folder}: train 2,966 rows") and "12 files match" in out[0]
    # progress on stderr, as the other long commands: the bytes hashed, then each split's stories checked
    size = sum((folder / name).stat().st_size for name in [*info["data_files"]] +
               [f"tokenizer/{name}" for name in info["tokenizer_files"]])
    finished = list(dict.fromkeys(re.findall(r"validate: ([a-z ]+): 100%\|[^|]*\| (\S+) ", captured.err)))
    assert finished == [("hashing files", f"{size / 1e6:.2f}M/{size / 1e6:.2f}M"), ("checking train", "2966/2966"),
                        ("checking validation", f"{len(rows)}/{len(rows)}")], captured.err  # rows: validation's


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
    (lambda f: _rewrite_train(f, _set_id(0, 0)), "train: row 5 has the separator id 0 inside the story"),
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
    (lambda tmp: tmp / "nothing", "nothing not found; pass a folder"),
    (lambda tmp: (tmp / "f.jsonl").write_text("{}") and tmp / "f.jsonl", "f.jsonl is a file, not a folder"),
    (lambda tmp: tmp, "prepare_info.json not found"),
    (lambda tmp: (tmp / "prepare_info.json").write_text("{oops") and tmp, "not valid JSON"),
])
def test_not_a_prepared_folder(tmp_path, capsys, make, message):
    assert main([str(make(tmp_path))]) == 2
    assert message in _one_error_line(capsys)


# ---- Readers check before they trust: every JSON file read back, and the Arrow buffers ----

DEEP = "[" * 100_000 + "]" * 100_000  # json recurses once per level: RecursionError unless checked
RECREATE = "re-create the folder with tinystories-prepare"


def _edit_json(folder, name: str, edit) -> None:
    """Apply `edit(data) -> data` to a JSON file of the folder (text when edit takes a str), then record the new
    sha256s, as someone editing the folder on purpose would: only the content checks can catch it."""
    path = folder / name
    text = path.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    new = edit(data)
    path.write_text(new if isinstance(new, str) else json.dumps(new))
    if name != "prepare_info.json":
        _rehash_all(folder)


def _rehash_all(folder) -> None:
    path = folder / "prepare_info.json"
    info = json.loads(path.read_text())
    hashes = tree_sha256(folder)
    info["data_files"] = {k: v for k, v in hashes.items() if k.split("/")[0] in ("train", "validation")
                          or k == "dataset_dict.json"}
    info["tokenizer_files"] = {k.split("/", 1)[1]: v for k, v in hashes.items() if k.startswith("tokenizer/")}
    path.write_text(json.dumps(info))


def _without(key):
    return lambda data: {k: v for k, v in data.items() if k != key}


def _set_base_id(position: int, value):
    def edit(vocab):
        vocab["base_ids"][position] = value
        return vocab
    return edit


def _corrupt_list_offsets(folder) -> None:
    """Overwrite offset 50 of the train input_ids list array in its Arrow file with 2**30 (past the values):
    datasets loads the folder, and reading row 50 would read outside the mapped file (a segfault)."""
    arrow = folder / TRAIN_ARROW
    with pa.memory_map(str(arrow)) as source:
        offsets = pa.ipc.open_stream(source).read_all().column("input_ids").chunks[0].offsets.to_numpy().copy()
    data = bytearray(arrow.read_bytes())
    pattern = offsets[40:60].astype("<i4").tobytes()
    at = data.find(pattern)
    assert at > 0 and data.find(pattern, at + 1) < 0
    data[at + 40:at + 44] = np.int32(2**30).tobytes()
    arrow.write_bytes(bytes(data))
    _rehash_all(folder)


# (damage, the one line load_prepared and tinystories-validate give, after "error: {folder}/")
DAMAGED_FOLDERS = [
    (lambda f: _edit_json(f, "prepare_info.json", lambda d: DEEP),
     f"prepare_info.json: not valid JSON (nested too deeply); {RECREATE}"),
    (lambda f: _edit_json(f, "prepare_info.json", _without("config")),
     f"prepare_info.json: key 'config' is missing; {RECREATE}"),
    (lambda f: _edit_json(f, "prepare_info.json", _without("vocab_sha256")),
     f"prepare_info.json: key 'vocab_sha256' is missing; {RECREATE}"),
    (lambda f: _edit_json(f, "prepare_info.json", lambda d: d | {"config": d["config"] | {"min_length": "10"}}),
     f"prepare_info.json: key 'config.min_length' is a string, not an integer; {RECREATE}"),
    (lambda f: _edit_json(f, "prepare_info.json", lambda d: d | {"data_files": {"../../etc/passwd": "0" * 64}}),
     (f"prepare_info.json: key 'data_files' has the key '../../etc/passwd', not a relative path inside the folder; "
      f"{RECREATE}")),
    (lambda f: _edit_json(f, "tokenizer/tinystories_vocab.json", _set_base_id(5, 10**12)),
     ("tokenizer/tinystories_vocab.json: has a base id outside the base tokenizer's [0, 50257); re-create it with "
      "tinystories-prepare")),
    (lambda f: _edit_json(f, "tokenizer/tinystories_vocab.json", _set_base_id(5, 2.5)),
     ("tokenizer/tinystories_vocab.json: key 'base_ids[5]' is a number, not an integer; re-create it with "
      "tinystories-prepare")),
    (lambda f: _edit_json(f, "tokenizer/tinystories_vocab.json", lambda d: DEEP),
     "tokenizer/tinystories_vocab.json: not valid JSON (nested too deeply); re-create it with tinystories-prepare"),
    (lambda f: _edit_json(f, "train/state.json", lambda d: d | {"_format_columns": []}),
     f"train/state.json: key '_format_columns' is [], not null or a list naming input_ids and length; {RECREATE}"),
    (lambda f: _edit_json(f, "train/state.json", lambda d: d | {"_data_files": [{"filename": "../../x.arrow"}]}),
     (f"train/state.json: key '_data_files[0].filename' is '../../x.arrow', not a file name in the split folder; "
      f"{RECREATE}")),
    (_corrupt_list_offsets,
     ("train: damaged Arrow data (Offset invariant failure: offset for slot 50 out of bounds: 1073741824 > 99464); "
      f"run tinystories-validate to name the file, then {RECREATE}")),
]


@pytest.mark.parametrize("damage, message", DAMAGED_FOLDERS)
def test_damaged_json_and_arrow_are_one_line_from_load_prepared_and_validate(folder, capsys, damage, message):
    damage(folder)
    with pytest.raises(TinyStoriesError) as raised:
        load_prepared(folder)
    assert str(raised.value) == f"{folder}/{message}"
    assert main([str(folder), "--no-hash-files"]) == 2
    assert _one_error_line(capsys) == f"error: {folder}/{message}"


JSON_FILES = ["prepare_info.json", "tokenizer/tinystories_vocab.json", "tokenizer/base/tokenizer.json",
              "dataset_dict.json", "train/state.json", "train/dataset_info.json"]


def _damages(name: str, data) -> list:
    """Damage of every kind to one JSON file: not JSON, the wrong type at the top, too deep, cut in half; and
    for the files whose keys this package reads, each key missing or holding a value of the wrong kind."""
    found = [("empty", ""), ("a list", "[]"), ("too deep", DEEP), ("cut in half", None)]
    if name in ("prepare_info.json", "tokenizer/tinystories_vocab.json", "train/state.json"):
        found += [(f"without {key}", json.dumps(_without(key)(data))) for key in data]
        found += [(f"{key} = 'x'", json.dumps(data | {key: "x"})) for key in data]
    return found


def test_every_json_file_damaged_every_way_is_a_one_line_error_or_harmless(folder, pristine):
    """The kind of fault, not the instances: each damage with the hashes re-recorded (so only the content checks
    can catch it) gives a TinyStoriesError from load_prepared, or loads data that still reads correctly (a key
    nothing reads); never another exception."""
    cases, escaped = 0, []
    reference = datasets.load_from_disk(str(pristine))["train"]["input_ids"][:3]
    for name in JSON_FILES:
        text = (pristine / name).read_text()
        for label, new in _damages(name, json.loads(text)):
            damaged = text[:len(text) // 2] if new is None else new
            _edit_json(folder, name, lambda data, damaged=damaged: damaged)
            cases += 1
            try:
                dataset, tokenizer = load_prepared(folder)
                assert dataset["train"]["input_ids"][:3] == reference, (name, label)
                tokenizer.decode(reference[0])
            except TinyStoriesError as e:
                assert "\n" not in str(e) and str(e).startswith(str(folder)), (name, label, str(e))
            except Exception as e:  # noqa: BLE001 -- what escapes is what this test counts
                escaped.append(f"{name} {label}: {type(e).__name__}: {e}")
            for restored in (name, "prepare_info.json"):
                shutil.copyfile(pristine / restored, folder / restored)
    # 4 damages of every JSON file, 2 of every top-level key of the three main ones: 88 for today's files
    assert escaped == [] and cases >= 80


def test_a_split_that_prepare_info_does_not_record_is_an_error(folder):
    """A split folder added by hand (a copy of train named test, its hashes recorded) would reach training
    unchecked: no counts to compare it with."""
    shutil.copytree(folder / "train", folder / "test")
    _edit_json(folder, "dataset_dict.json", lambda layout: {**layout, "splits": [*layout["splits"], "test"]})
    with pytest.raises(TinyStoriesError, match=re.escape(f"{folder}: split 'test' is not one of the splits "
                                                         "prepare_info.json records (train, validation); the folder "
                                                         "was altered, re-create")):
        load_prepared(folder)
