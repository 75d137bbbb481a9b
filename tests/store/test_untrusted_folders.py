"""A folder made elsewhere (a pulled Hub repository, a copied prepared folder) is untrusted input: every name
read from it that becomes a path is checked when it is read, by one rule (utils/json_files.py), so the
commands reading it (validate, export, push --to-folder, load_prepared) each stop with one line and write
nothing outside their output. The crafted folders are built here from a real prepared one."""
import json
import re
import shutil

import pytest
import yaml
from output import one_error_line

from tinystories_hf import PrepareConfig, TinyStoriesError, load_prepared, prepare, write_hub_folder
from tinystories_hf.exports import main as export_main
from tinystories_hf.hub.push import main as push_main
from tinystories_hf.store.folder import file_sha256
from tinystories_hf.store.validate import main as validate_main
from tinystories_hf.utils.json_files import plain_file, relative_file, split_name

ESCAPE = "../../escape"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    out = tmp_path_factory.mktemp("untrusted") / "demo"
    prepare(PrepareConfig(source="demo", output=str(out), vocab_size=300, num_proc=1))
    return out


def _tree(root) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _craft(pristine, tmp_path, *, in_prepare_info: bool):
    """The issue's folder: a split `../../escape` named in dataset_dict.json (and, with `in_prepare_info`, in
    prepare_info.json with its counts), its data a copy of validation placed where the name points
    (tmp_path/escape), the hash of the edited dataset_dict.json re-recorded as an editor would."""
    folder = shutil.copytree(pristine, tmp_path / "in" / "p")
    shutil.copytree(folder / "validation", folder / ESCAPE)
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "validation", ESCAPE]}))
    info = json.loads((folder / "prepare_info.json").read_text())
    if in_prepare_info:
        info["splits"][ESCAPE] = info["splits"]["validation"]
    info["data_files"]["dataset_dict.json"] = file_sha256(folder / "dataset_dict.json")
    (folder / "prepare_info.json").write_text(json.dumps(info, indent=2))
    return folder


def _one_line(capsys) -> str:
    return one_error_line(capsys.readouterr().err)  # after validate's and export's progress bars


COMMANDS = {
    "validate": lambda folder, out: validate_main([str(folder)]),
    "export nanogpt": lambda folder, out: export_main([str(folder), "--output", str(out)]),
    "export llama2c": lambda folder, out: export_main([str(folder), "--format", "llama2c", "--output", str(out)]),
    "export megatron": lambda folder, out: export_main([str(folder), "--format", "megatron", "--output", str(out)]),
    "push --to-folder": lambda folder, out: push_main([str(folder), "--to-folder", str(out)]),
}


@pytest.mark.parametrize("in_prepare_info", [True, False], ids=["both files", "dataset_dict.json only"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_split_named_to_escape_is_one_line_and_nothing_is_written(pristine, tmp_path, capsys, command,
                                                                    in_prepare_info):
    folder = _craft(pristine, tmp_path, in_prepare_info=in_prepare_info)
    out = tmp_path / "out" / "deep" / "o"
    before = _tree(tmp_path)
    assert COMMANDS[command](folder, out) == 2
    line = _one_line(capsys)
    where = "prepare_info.json: key 'splits'" if in_prepare_info else "dataset_dict.json: key 'splits[2]'"
    assert re.fullmatch(rf"error: {re.escape(str(folder))}/{re.escape(where)} .*'\.\./\.\./escape', not a split "
                        r"name .*; re-create the folder with tinystories-prepare", line), line
    assert _tree(tmp_path) == before and not out.exists()  # not one file written, inside or outside
    with pytest.raises(TinyStoriesError, match=re.escape(where)):
        load_prepared(folder)


def test_a_card_naming_a_split_to_escape_is_one_line(pristine, tmp_path, capsys):
    """The Hub layout: the split names come from the card's YAML."""
    hub = write_hub_folder(pristine, tmp_path / "in" / "hub")
    card = (hub / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(card.split("---\n", 2)[1])
    meta["configs"][0]["data_files"][1]["split"] = ESCAPE
    (hub / "README.md").write_text(f"---\n{yaml.safe_dump(meta)}---\n{card.split('---', 2)[2]}", encoding="utf-8")
    before, _ = _tree(tmp_path), capsys.readouterr()
    for command in ("validate", "export nanogpt", "push --to-folder"):
        assert COMMANDS[command](hub, tmp_path / "o") == 2
        line = _one_line(capsys)
        assert re.fullmatch(r"error: .*/README\.md: key 'configs\[0\]\.data_files\[1\]\.split' is "
                            r"'\.\./\.\./escape', not a split name .*", line), (command, line)
        assert _tree(tmp_path) == before


def test_the_split_rule_is_datasets_own():
    """Every name datasets' own pattern takes is a split here, and no other (datasets' `$` also takes a name
    ending in a newline: refused here, it is no file name)."""
    from datasets.naming import _split_re

    names = ["train", "validation", "val", "test_1", "train.v2", "a.b.c", "validação", "", ".", "..", ESCAPE,
             "a/b", "a\\b", ".hidden", "x.", "a..b", "a b", "-x", "/abs", "train\x00", "tr-ain"]
    for name in names:
        assert split_name(name) == bool(re.match(_split_re, name)), name
    assert re.match(_split_re, "train\n") and not split_name("train\n")
    assert not split_name(None) and not split_name(3)


def test_file_names_and_relative_paths_stay_inside_the_folder():
    for name in ("data-00000-of-00001.arrow", "state.json", "tok.model", "a..b"):
        assert plain_file(name) and relative_file(name), name
    for name in ("", ".", "..", "a/b", "a\\b", "x\x00y", None):
        assert not plain_file(name), name
    for path in ("train/state.json", "tokenizer/base/tokenizer.json"):
        assert relative_file(path), path
    for path in ("/etc/passwd", "../x", "train/../../x", "train//x", "train/./x", "train/", "a\\..\\b", ""):
        assert not relative_file(path), path
