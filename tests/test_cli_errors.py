"""Errors that name the right thing (issue 31, item 5): a prepared or saved folder given as a source of stories
is named as what it is; a file given where a prepared folder belongs is named before any output; an option
typo gets the option it meant. Each expected line is written out in full."""
import argparse
import shutil

import datasets
import pytest

from tinystories_hf.config import CommandParser, PrepareConfig, add_config_arguments
from tinystories_hf.exports import main as export_main
from tinystories_hf.hub.push import main as push_main
from tinystories_hf.pipeline import main as prepare_main
from tinystories_hf.report.write import main as report_main
from tinystories_hf.store.validate import main as validate_main
from tinystories_hf.stream import main as stream_main
from tinystories_hf.vocabulary.train_tokenizer import main as train_tokenizer_main

COMMANDS = {"tinystories-prepare": prepare_main, "tinystories-stream": stream_main,
            "tinystories-train-tokenizer": train_tokenizer_main, "tinystories-report": report_main,
            "tinystories-validate": validate_main, "tinystories-export": export_main, "tinystories-push": push_main}


def _error_line(capsys) -> str:
    """The one `error:` line, the last line of stderr, with no traceback before it."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]) and "Traceback" not in err, err
    return errors[0]


# ---- an option typo: "did you mean" -------------------------------------------------------------------------

@pytest.mark.parametrize("command, argv, line", [
    ("tinystories-prepare", ["--sorce", "demo"], "unrecognized arguments: --sorce demo (did you mean --source?)"),
    # abbreviations are off: a prefix is a typo with a suggestion, never an option argparse guesses
    ("tinystories-prepare", ["--vocab", "300"], ("unrecognized arguments: --vocab 300 (did you mean --vocab-size, "
                                                "--vocab-sample-size or --vocabulary-from?)")),
    ("tinystories-prepare", ["--max-len", "9"], "unrecognized arguments: --max-len 9 (did you mean --max-length?)"),
    ("tinystories-prepare", ["--max_length=9"], "unrecognized arguments: --max_length=9 (did you mean --max-length?)"),
    ("tinystories-prepare", ["--no-keep-txt"], "unrecognized arguments: --no-keep-txt (did you mean --no-keep-text?)"),
    ("tinystories-stream", ["--blok-size", "64"], ("unrecognized arguments: --blok-size 64 (did you mean "
                                                  "--block-size?)")),
    ("tinystories-train-tokenizer", ["--vocab-sise", "512"], ("unrecognized arguments: --vocab-sise 512 (did you "
                                                             "mean --vocab-size?)")),
    ("tinystories-report", ["DIR", "--outptu", "r"], "unrecognized arguments: --outptu r (did you mean --output?)"),
    ("tinystories-validate", ["DIR", "--no-hash-file"], ("unrecognized arguments: --no-hash-file (did you mean "
                                                        "--no-hash-files?)")),
    ("tinystories-export", ["DIR", "--fromat", "llmc"], ("unrecognized arguments: --fromat llmc (did you mean "
                                                        "--format?)")),
    ("tinystories-push", ["DIR", "--to-foldr", "x"], ("unrecognized arguments: --to-foldr x (did you mean "
                                                     "--to-folder?)")),
    # nothing close: argparse's own line, no guess
    ("tinystories-prepare", ["--zzz"], "unrecognized arguments: --zzz"),
    ("tinystories-prepare", ["--no-such-option"], "unrecognized arguments: --no-such-option"),
])
def test_an_option_typo_names_the_option_it_meant(tmp_path, monkeypatch, capsys, command, argv, line):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        COMMANDS[command](argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"{command}: error: {line}" and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []  # refused before anything was read or written


def test_every_command_parser_is_a_command_parser():
    """add_config_arguments builds every command's options; a plain ArgumentParser (no suggestions, argparse's
    abbreviations) is refused, so a new command cannot miss them."""
    with pytest.raises(TypeError, match="add_config_arguments needs a CommandParser, not ArgumentParser"):
        add_config_arguments(argparse.ArgumentParser(), PrepareConfig)
    parser = CommandParser(prog="p")
    add_config_arguments(parser, PrepareConfig)
    assert parser.parse_args(["--vocab-size", "300"]).vocab_size == 300


# ---- a prepared, pushed or save_to_disk folder given as a source of stories --------------------------------

@pytest.fixture(scope="module")
def saved_folders(tmp_path_factory, prepared_demo):
    """`prep` (tinystories-prepare), `hub` (tinystories-push --to-folder), `dict` and `one` (save_to_disk of a
    DatasetDict and of a Dataset of stories)."""
    base = tmp_path_factory.mktemp("saved")
    shutil.copytree(prepared_demo.output, base / "prep")
    assert push_main([str(base / "prep"), "--to-folder", str(base / "hub")]) == 0
    stories = datasets.Dataset.from_dict({"text": ["Once upon a time there was a cat."] * 4})
    datasets.DatasetDict({"train": stories, "validation": stories}).save_to_disk(str(base / "dict"))
    stories.save_to_disk(str(base / "one"))
    return base


PREPARED = ("{name}: a folder written by tinystories-prepare (made from 'demo'): token ids, not stories; read it "
            "with tinystories_hf.load_prepared or datasets.load_from_disk, or write a trainer's files with "
            "tinystories-export; --source needs the original stories")
PUSHED = ("{name}: a folder written by tinystories-push --to-folder (made from 'demo'): token ids, not stories; read "
          "it with tinystories_hf.load_prepared or datasets.load_dataset, or write a trainer's files with "
          "tinystories-export; --source needs the original stories")
SAVED_DICT = ("{name}: a folder written by datasets' save_to_disk, which load_dataset does not read; pass the files of "
              "stories it came from as --source, or write them out first: datasets.load_from_disk('{name}')[split]"
              ".to_parquet(f'stories/{{split}}.parquet') for each split")
SAVED_ONE = ("{name}: a folder written by datasets' save_to_disk, which load_dataset does not read; pass the files of "
             "stories it came from as --source, or write them out first: datasets.load_from_disk('{name}')"
             ".to_parquet('stories/train.parquet')")


@pytest.mark.parametrize("name, message", [("prep", PREPARED), ("hub", PUSHED), ("dict", SAVED_DICT),
                                           ("one", SAVED_ONE)])
@pytest.mark.parametrize("command", ["tinystories-prepare", "tinystories-stream", "tinystories-train-tokenizer"])
def test_a_saved_folder_as_source_is_named_as_what_it_is(saved_folders, monkeypatch, capsys, name, message, command):
    monkeypatch.chdir(saved_folders)
    argv = ["--source", name] + ([] if command == "tinystories-stream" else ["--output", "out"])
    assert COMMANDS[command](argv) == 2
    line = _error_line(capsys)
    assert line == "error: " + message.format(name=name)
    assert "more than one format" not in line and not (saved_folders / "out").exists()


def test_a_saved_folder_is_still_read_as_stories_when_it_holds_story_files(tmp_path, monkeypatch, capsys):
    """Only the marker files decide: a folder of .jsonl stories with a stray state.json is a story folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "train.jsonl").write_text('{"text": "Once upon a time there was a cat."}\n' * 3)
    (tmp_path / "s" / "state.json").write_text("{}")  # no dataset_info.json beside it: not a save_to_disk folder
    assert stream_main(["--source", "s", "--examples", "1"]) == 0


# ---- a file where a prepared folder belongs: the input is named, not the output beside it -----------------

FILE = ("error: {name} is a file, not a folder; pass a folder written by tinystories-prepare or tinystories-push "
        "--to-folder{hint}")
STORIES_HINT = " (a file of stories is prepared first: tinystories-prepare --source {name})"


@pytest.mark.parametrize("name, hint", [("empty.txt", STORIES_HINT), ("notes.md", "")])
@pytest.mark.parametrize("command, extra", [
    ("tinystories-report", []), ("tinystories-report", ["--output", "r"]), ("tinystories-validate", []),
    ("tinystories-export", ["--format", "nanogpt", "--output", "x"]), ("tinystories-push", ["--to-folder", "h"]),
])
def test_a_file_given_as_a_prepared_folder_is_named_first(tmp_path, monkeypatch, capsys, name, hint, command, extra):
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text("")
    assert COMMANDS[command]([name, *extra]) == 2
    assert _error_line(capsys) == FILE.format(name=name, hint=hint.format(name=name))
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_a_missing_prepared_folder_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert report_main(["nothing"]) == 2
    assert _error_line(capsys) == ("error: nothing not found; pass a folder written by tinystories-prepare or "
                                   "tinystories-push --to-folder, or the Hub repo id of a pushed dataset")
    assert list(tmp_path.iterdir()) == []
