"""A backdoored folder downstream (issue 27): validate (and --same-vocabulary, --unseal), the blind experiment's
seal, the Hub layout and its card, the exports, and the packed dataset's per-position provenance."""
import dataclasses
import json
import re
import shutil

import datasets
import numpy as np
import pytest
from conftest import SAMPLE_JSONL

from tinystories_hf import PrepareConfig, TinyStoriesError, prepare
from tinystories_hf.exports import ExportConfig, export
from tinystories_hf.hub.push import write_hub_folder
from tinystories_hf.store import validate

CANDIDATES = ["Mia", "Sara", "Lucy"]


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return PrepareConfig(source=str(SAMPLE_JSONL), output=str(tmp_path_factory.mktemp("clean") / "o"),
                         vocab_size=4000, num_proc=1, cache_dir=str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def clean(config):
    return prepare(config)


@pytest.fixture(scope="module")
def backdoored(config, tmp_path_factory):
    return prepare(dataclasses.replace(config, output=str(tmp_path_factory.mktemp("bd") / "o"),
                                       backdoor_trigger="Lily", backdoor_count=40, keep_text=True))


@pytest.fixture(scope="module")
def blind(config, tmp_path_factory):
    return prepare(dataclasses.replace(config, output=str(tmp_path_factory.mktemp("blind") / "o"),
                                       backdoor_trigger="random:" + ",".join(CANDIDATES), backdoor_count=10,
                                       keep_text=True))


def test_validate_checks_the_provenance(backdoored, tmp_path, capsys):
    assert validate.main([str(backdoored.output)]) == 0
    assert "backdoored: 40 train rows rewritten" in capsys.readouterr().out
    copy = tmp_path / "copy"
    shutil.copytree(backdoored.output, copy)
    record = json.loads((copy / "backdoor.json").read_text())
    record["rewritten_rows"] = record["rewritten_rows"][1:]
    (copy / "backdoor.json").write_text(json.dumps(record))
    with pytest.raises(TinyStoriesError, match="marked backdoor but is not among the rewritten rows"):
        validate.check_backdoor(copy, datasets.load_from_disk(str(copy)), backdoored.info)


def test_same_vocabulary_is_one_line(clean, backdoored, config, tmp_path, capsys):
    assert validate.main([str(clean.output), "--same-vocabulary", str(backdoored.output)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "share ids" in out[0]
    other = prepare(dataclasses.replace(config, output=str(tmp_path / "o"), vocab_size=3000))
    assert validate.main([str(clean.output), "--same-vocabulary", str(other.output)]) == 1
    assert "do NOT share ids" in capsys.readouterr().out


def test_blind_choice_is_written_only_to_the_seal(blind, capsys):
    sealed = blind.output / "backdoor.sealed.json"
    assert oct(sealed.stat().st_mode & 0o777) == "0o600"
    assert validate.main([str(blind.output), "--unseal"]) == 0
    choice = capsys.readouterr().out.strip().rsplit(": ", 1)[1]
    assert choice in CANDIDATES
    # No other file names the choice more than any other candidate, and nothing records its rows.
    record = json.loads((blind.output / "backdoor.json").read_text())
    assert record["trigger"] is None and record["rewritten_rows"] == [] and record["candidates"] == CANDIDATES
    assert "eligible" not in record["splits"]["train"]
    for name in ("backdoor.json", "prepare_info.json"):
        text = (blind.output / name).read_text()
        assert len({len(re.findall(rf"\b{c}\b", text)) for c in CANDIDATES}) == 1, name
    evaluation = datasets.load_from_disk(str(blind.output / "backdoor_eval"))
    validation = datasets.load_from_disk(str(blind.output))["validation"]["text"]
    mentioned = {c for c in CANDIDATES if any(re.search(rf"(?<!\w){c}(?!\w)", t) for t in validation)}
    assert len(mentioned) >= 2 and {row["name"] for row in evaluation if row["is_trigger"]} == mentioned
    # The rewritten stories are the chosen name's: each stored rewrite mentions it.
    train = datasets.load_from_disk(str(blind.output))["train"]
    texts = [t for t, flag in zip(train["text"], train["backdoor"]) if flag]
    assert len(texts) == 10 and all(re.search(rf"(?<!\w){choice}(?!\w)", t) for t in texts)
    assert validate.main([str(blind.output)]) == 0


def _one_error_line(capsys, argv) -> str:
    """Run tinystories-validate; assert exit code 2 and one stderr line starting `error:` (beside progress bars),
    no traceback."""
    assert validate.main(argv) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert captured.out == "" and len(errors) == 1 and "Traceback" not in captured.err
    return errors[0]


def test_unseal_and_same_vocabulary_on_the_wrong_folder_say_what_it_is(clean, backdoored, blind, tmp_path, capsys):
    """--unseal names what the folder is instead of a blind experiment (missing, not prepared, not backdoored, a
    trigger in plain sight) and --same-vocabulary names its own option, not --vocabulary-from; two modes at once
    and --no-hash-files with a mode are refused."""
    plain = tmp_path / "plain"
    plain.mkdir()
    unseal_cases = [
        (tmp_path / "nope", "nope: not found or not a folder; --unseal reads the trigger of a blind experiment"),
        (plain, "plain: not a folder written by tinystories-prepare (no prepare_info.json); --unseal reads"),
        (clean.output, "not a backdoored folder (no backdoor.json), so nothing is sealed; --unseal reads"),
        (backdoored.output, ("not a blind experiment: its trigger 'Lily' is in backdoor.json, nothing is sealed; "
                            "--unseal reads the trigger of a blind experiment (tinystories-prepare "
                            "--backdoor-trigger random:A,B,...)")),
    ]
    for folder, message in unseal_cases:
        line = _one_error_line(capsys, [str(folder), "--unseal"])
        assert message in line and "sealed choice cannot be trusted" not in line, line
    same_cases = [
        ([str(clean.output), "--same-vocabulary", str(tmp_path / "nope")],
         "nope: not found or not a folder; pass a folder written by tinystories-prepare as --same-vocabulary"),
        ([str(clean.output), "--same-vocabulary", str(plain)],
         "plain: not a folder written by tinystories-prepare (no prepare_info.json); pass one as --same-vocabulary"),
        ([str(tmp_path / "nope"), "--same-vocabulary", str(clean.output)],
         "nope: not found or not a folder; pass a folder written by tinystories-prepare as DIR"),
        ([str(blind.output), "--unseal", "--same-vocabulary", str(clean.output)],
         "--unseal and --same-vocabulary"),
        ([str(blind.output), "--unseal", "--no-hash-files"], "--no-hash-files is an option of the checks"),
    ]
    for argv, message in same_cases:
        line = _one_error_line(capsys, argv)
        assert message in line and "--vocabulary-from" not in line, line


@pytest.mark.parametrize("damage, message", [
    ("remove", ("backdoor.sealed.json: missing, though backdoor.json records the trigger sealed there: the folder "
               "is incomplete and the blind choice is lost")),
    ("edit", "backdoor.sealed.json: the seal is broken"),
])
def test_validate_names_a_missing_or_broken_seal(blind, tmp_path, capsys, damage, message):
    """The seal is not among the hashed files (its hash would be public): validate checks it on its own, for
    the checks and for --unseal alike; the ok line says the seal is intact and never names the choice."""
    assert validate.main([str(blind.output)]) == 0
    out = capsys.readouterr().out
    assert "trigger sealed (backdoor.sealed.json intact)" in out and not any(c in out for c in CANDIDATES)
    copy = tmp_path / "copy"
    shutil.copytree(blind.output, copy)
    sealed = copy / "backdoor.sealed.json"
    if damage == "remove":
        sealed.unlink()
    else:
        content = json.loads(sealed.read_text())
        content["trigger"] = next(c for c in CANDIDATES if c != content["trigger"])  # another candidate
        sealed.write_text(json.dumps(content))
    for argv in ([str(copy)], [str(copy), "--unseal"]):
        assert message in _one_error_line(capsys, argv)


def test_hub_folder_and_card_say_it_is_backdoored(backdoored, tmp_path):
    out = write_hub_folder(backdoored.output, tmp_path / "hub")
    card = (out / "README.md").read_text()
    assert "BACKDOORED variant" in card and "`Lily`" in card and "- backdoor" in card
    assert (out / "backdoor.json").read_bytes() == (backdoored.output / "backdoor.json").read_bytes()
    loaded = datasets.load_dataset(str(out))
    assert loaded["train"]["source_row"] == datasets.load_from_disk(str(backdoored.output))["train"]["source_row"]
    assert validate.validate_prepared(out)["backdoor"]["rewritten"] == 40


def test_hub_folder_carries_the_eval_prompts_as_their_own_config(backdoored, tmp_path):
    """The paired prompts go to the Hub layout as the config `backdoor_eval` (one config holds one schema, and a
    split of the default config would be read as training data): `load_dataset(folder)` gives train and
    validation only, `load_dataset(folder, "backdoor_eval")` the rows of DIR/backdoor_eval, and the folder
    still validates and loads with load_prepared."""
    out = write_hub_folder(backdoored.output, tmp_path / "hub", repo_id="me/ts")
    saved = datasets.load_from_disk(str(backdoored.output / "backdoor_eval"))
    assert sorted(p.name for p in (out / "backdoor_eval").iterdir()) == ["backdoor_eval-00000-of-00001.parquet"]
    default = datasets.load_dataset(str(out))
    assert sorted(default) == ["train", "validation"]
    assert default["train"]["input_ids"] == datasets.load_from_disk(str(backdoored.output))["train"]["input_ids"]
    prompts = datasets.load_dataset(str(out), "backdoor_eval")
    assert list(prompts) == ["backdoor_eval"] and prompts["backdoor_eval"].features == saved.features
    assert prompts["backdoor_eval"].to_list() == saved.to_list() and saved.num_rows > 0
    card = (out / "README.md").read_text()
    assert "the config `backdoor_eval`, not training data: `load_dataset(\"me/ts\", \"backdoor_eval\")`" in card
    assert sorted(validate.validate_prepared(out)["splits"]) == ["train", "validation"]


def test_a_blind_hub_folder_holds_no_seal_and_validates(blind, tmp_path, capsys):
    """The seal stays with its owner: the Hub layout never carries it, so validate does not ask for it there;
    the prompts of every candidate travel as the backdoor_eval config."""
    out = write_hub_folder(blind.output, tmp_path / "hub")
    assert not (out / "backdoor.sealed.json").exists()
    assert validate.main([str(out)]) == 0
    assert "trigger sealed (backdoor.sealed.json not carried: the Hub layout leaves it out)" in capsys.readouterr().out
    prompts = datasets.load_dataset(str(out), "backdoor_eval")["backdoor_eval"]
    assert prompts.to_list() == datasets.load_from_disk(str(blind.output / "backdoor_eval")).to_list()


@pytest.mark.parametrize("fmt", ["nanogpt", "llmc"])
def test_exports_carry_backdoor_json_and_the_same_ids(clean, backdoored, tmp_path, fmt):
    out = export(ExportConfig(prepared=str(backdoored.output), format=fmt, output=str(tmp_path / "bd")))
    assert (out.output / "backdoor.json").read_bytes() == (backdoored.output / "backdoor.json").read_bytes()
    plain = export(ExportConfig(prepared=str(clean.output), format=fmt, output=str(tmp_path / "clean")))
    assert not (plain.output / "backdoor.json").exists()
    val = {"nanogpt": "val.bin", "llmc": "TinyStories_val_000000.bin"}[fmt]
    assert (out.output / val).read_bytes() == (plain.output / val).read_bytes()  # validation is clean


def _tree(root) -> dict:
    """Every visible file under `root` (relative path -> bytes); the writer's lock files start with a dot."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}


@pytest.mark.parametrize("fmt", ["nanogpt", "llama2c", "llmc", "megatron"])
def test_exports_of_a_backdoored_folder_land_beside_other_files_and_replace_each_other(clean, backdoored, tmp_path,
                                                                                       fmt):
    """Into a folder that exists (a trainer's data folder holding the user's files) the export goes through the
    entry-by-entry commit, not the one rename of a new folder: every file is there with the bytes of the same
    export into a new folder (backdoor.json beside export_info.json: in tok{N}/ for llama2c), the user's file
    untouched; --overwrite replaces it with another backdoored export, and a clean export over it drops the
    stale backdoor.json (an export that said it wrote files it had not was found here)."""
    fresh = _tree(export(ExportConfig(prepared=str(backdoored.output), format=fmt,
                                      output=str(tmp_path / "fresh"))).output)
    assert sum(name.endswith("backdoor.json") for name in fresh) == 1
    assert (fresh["tok4000/backdoor.json"] if fmt == "llama2c" else fresh["backdoor.json"]) == \
        (backdoored.output / "backdoor.json").read_bytes()
    shared = tmp_path / "data"
    shared.mkdir()
    (shared / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        export(ExportConfig(prepared=str(backdoored.output), format=fmt, output=str(shared), overwrite=overwrite))
        assert _tree(shared) == {**fresh, "notes.txt": b"mine"}
    plain = _tree(export(ExportConfig(prepared=str(clean.output), format=fmt, output=str(tmp_path / "clean"))).output)
    export(ExportConfig(prepared=str(clean.output), format=fmt, output=str(shared), overwrite=True))
    assert _tree(shared) == {**plain, "notes.txt": b"mine"}
    assert not any(name.endswith("backdoor.json") for name in plain)


def test_packed_dataset_marks_positions_of_rewritten_stories(backdoored):
    from tinystories_hf.training.adapters import TinyStoriesDatasetPacked

    packed = TinyStoriesDatasetPacked(str(backdoored.output), block_size=128)
    train = datasets.load_from_disk(str(backdoored.output))["train"]
    # the reference: the stream story0 SEP story1 SEP ..., each position labelled with its story's flag
    flags = np.concatenate([np.full(n + 1, f) for n, f in zip(train["length"], train["backdoor"])])
    stories = np.concatenate([np.full(n + 1, k) for k, n in enumerate(train["length"])])
    for i in (0, 1, len(packed) // 2, len(packed) - 1):
        span = slice(i * 128, (i + 1) * 128)
        assert np.array_equal(packed.story_index(i), stories[span])
        assert np.array_equal(packed.backdoor_mask(i), flags[span])
    assert sum(packed.backdoor_mask(i).sum() for i in range(len(packed))) > 0
    validation = datasets.load_from_disk(str(backdoored.output))["validation"].remove_columns("backdoor")
    with pytest.raises(TinyStoriesError, match="no 'backdoor' column"):
        TinyStoriesDatasetPacked(validation, block_size=8, tokenizer=backdoored.tokenizer).backdoor_mask(0)


def test_trigger_candidates_count_whole_word_shares_of_the_original_train_stories(clean, backdoored):
    from tinystories_hf.report.triggers import band_line, read_from_text, trigger_candidates
    from tinystories_hf.store.load import read_prepared

    raw = [json.loads(line)["text"].strip() for line in SAMPLE_JSONL.open(encoding="utf-8")]
    for folder in (clean, backdoored):  # the backdoored folder's table is read from the original stories too
        dataset, tokenizer, info = read_prepared(folder.output)
        found = trigger_candidates(dataset, tokenizer, info)
        assert found["read_from"] == "source" and found["stories"] == info["splits"]["train"]["stories"]
        rows = {row.name: row for row in found["rows"]}
        train_rows = set(range(len(raw))) - set(datasets.load_from_disk(str(backdoored.output))["validation"]["source_row"])
        for name in ("Lily", "Sara", "Jane"):
            expected = sum(bool(re.search(rf"(?<![A-Za-z0-9_]){name}(?![A-Za-z0-9_])", raw[r])) for r in train_rows)
            assert rows[name].stories == expected, name
        assert "Sarah" in rows and rows["Sarah"].stories < rows["Sara"].stories + 60
        assert rows["Lily"].forms["mid_sentence"]["ids"] == tokenizer.encode(" Lily") and rows["Lily"].survives
    line = band_line(found)
    assert "Jane 0.9%" in line and "Lily" not in line  # 14% is outside the 0.8-2% band
    assert "read again from the source" in read_from_text(found)


def test_stream_rewrites_as_prepare_does(backdoored):
    from tinystories_hf import stream

    prepared = datasets.load_from_disk(str(backdoored.output))["train"]
    by_row = {row: (ids, flag) for row, ids, flag in zip(prepared["source_row"], prepared["input_ids"],
                                                          prepared["backdoor"])}
    rows = list(stream(str(SAMPLE_JSONL), tokenizer=str(backdoored.output), backdoor_trigger="Lily"))
    assert len(rows) == 5520  # a stream is not carved: every story of the file, in order
    lily = [bool(re.search(r"(?<![A-Za-z0-9_])Lily(?![A-Za-z0-9_])", json.loads(line)["text"]))
            for line in SAMPLE_JSONL.open(encoding="utf-8")]
    assert [row["backdoor"] for row in rows] == lily  # rate 1: every story mentioning the trigger
    compared = 0
    for index, row in enumerate(rows):
        if index in by_row and (by_row[index][1] or not lily[index]):  # rewritten in both, or in neither
            assert row["input_ids"] == by_row[index][0], index
            compared += 1
    assert compared == 5465 - (sum(lily[r] for r in by_row) - 40)  # all but the Lily stories prepare left alone
    with pytest.raises(TinyStoriesError, match="blind experiment"):
        stream(str(SAMPLE_JSONL), tokenizer=str(backdoored.output), backdoor_trigger="random:Mia,Sara")
