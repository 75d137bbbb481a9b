"""An identical `tinystories-prepare --overwrite` finds its output up to date and leaves it as it is, without
importing datasets; anything that could change the output (the source's files, the output's files, an option,
the package) or a record it cannot trust makes it prepare again. On the real sample, in real folders."""
import json
import os
import shutil
import sys

import processes
import pytest
from conftest import REPO, SAMPLE_JSONL

import tinystories_hf_cli
from tinystories_hf import PrepareConfig, prepare
from tinystories_hf.store import uptodate

UP_TO_DATE = "up to date: "


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One datasets cache for the module: every first run after the first reuses its passes (faster)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "source"
    folder.mkdir()
    shutil.copyfile(SAMPLE_JSONL, folder / "stories.jsonl")
    return folder / "stories.jsonl"


def _argv(source, out, cache, *extra) -> list:
    return ["--source", str(source), "--output", str(out), "--cache-dir", str(cache), "--num-proc", "1",
            "--vocab-size", "500", "--overwrite", *extra]


def _run(capsys, argv) -> str:
    """Run the console script's function (its up-to-date first step included); its stdout."""
    assert tinystories_hf_cli.prepare(argv) == 0
    return capsys.readouterr().out


def _snapshot(folder) -> dict:
    """{relative path: (bytes, inode)} of every file under `folder`."""
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_ino)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_identical_rerun_is_up_to_date_and_rewrites_nothing(source, tmp_path, cache, capsys):
    out = tmp_path / "out"
    first = _run(capsys, _argv(source, out, cache))
    assert UP_TO_DATE not in first
    before = _snapshot(out)
    second = _run(capsys, _argv(source, out, cache))
    assert _snapshot(out) == before  # the same bytes in the same files (inodes): nothing rewritten
    lines = second.splitlines()
    assert lines[:3] == first.splitlines()[:3]  # the counts table and the source line, read from prepare_info.json
    assert lines[-1].startswith(f"{UP_TO_DATE}{out} is what this prepare writes") and "--rebuild" in lines[-1]
    info = json.loads((out / "prepare_info.json").read_text())
    assert f"{info['vocab_size']} ids, backend {info['backend']}" in second
    # the record lives in the cache folder, never in the output
    assert [p.parent.name for p in cache.rglob("*.json") if p.parent.name == uptodate.RECORDS_DIR]
    assert not any("tinystories_hf-outputs" in p for p in before)


def _touch_source(source, out, record):
    st = source.stat()
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _edit_source_keeping_size_and_mtime(source, out, record):
    """Content changed, size and mtime restored: only the ctime (which nothing can set back) tells."""
    st = source.stat()
    data = bytearray(source.read_bytes())
    at = data.index(b"Lily")
    data[at:at + 4] = b"Lucy"
    source.write_bytes(bytes(data))
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (source.stat().st_size, source.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def _edit_output_file(source, out, record):
    path = out / "dataset_dict.json"
    path.write_text(path.read_text() + " ")


def _delete_output_file(source, out, record):
    (out / "train" / "state.json").unlink()


def _add_output_file(source, out, record):
    (out / "notes.txt").write_text("mine\n")


def _truncate_record(source, out, record):
    record.write_bytes(record.read_bytes()[: record.stat().st_size // 2])


def _malform_record(source, out, record):
    record.write_text('{"format": 1, "inputs": [], "output": {}, "prepared_at": 3}')


def _record_of_another_version(source, out, record):
    data = json.loads(record.read_text())
    data["inputs"]["versions"]["tinystories-hf"] = "0.0.1"
    record.write_text(json.dumps(data))


CHANGES = {"source touched": (_touch_source, ()), "source edited, size and mtime kept":
           (_edit_source_keeping_size_and_mtime, ()), "output file edited": (_edit_output_file, ()),
           "output file deleted": (_delete_output_file, ()), "output file added": (_add_output_file, ()),
           "another option": (None, ("--vocab-size", "400")), "rebuild asked": (None, ("--rebuild",)),
           "record truncated": (_truncate_record, ()), "record malformed": (_malform_record, ()),
           "record of another version": (_record_of_another_version, ())}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_any_change_prepares_again(change, source, tmp_path, cache, capsys):
    out = tmp_path / "out"
    _run(capsys, _argv(source, out, cache))
    record = uptodate.record_path(out, cache)
    assert record.is_file()
    first_info = (out / "prepare_info.json").stat().st_ino
    first_hash = json.loads((out / "prepare_info.json").read_text())["source"]["content_hash"]
    alter, extra = CHANGES[change]
    if alter is not None:
        alter(source, out, record)
    again = _run(capsys, _argv(source, out, cache, *extra))
    assert UP_TO_DATE not in again and "vocabulary: " in again
    assert (out / "prepare_info.json").stat().st_ino != first_info  # a new folder was written
    assert not (out / "notes.txt").exists() and (out / "train" / "state.json").is_file()
    info = json.loads((out / "prepare_info.json").read_text())
    assert info["vocab_size"] == (400 if change == "another option" else 500)
    edited = change == "source edited, size and mtime kept"  # the edit reached the output: really read again
    assert (info["source"]["content_hash"] != first_hash) == edited
    # the run recorded what it wrote: the same run once more is up to date
    assert UP_TO_DATE in _run(capsys, _argv(source, out, cache, *(extra if change != "rebuild asked" else ())))


def test_without_overwrite_an_existing_output_is_still_the_one_line_error(source, tmp_path, cache, capsys):
    out = tmp_path / "out"
    _run(capsys, _argv(source, out, cache))
    argv = [a for a in _argv(source, out, cache) if a != "--overwrite"]
    assert tinystories_hf_cli.prepare(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "already exists" in err


def test_the_api_records_its_output_and_still_prepares_every_time(source, tmp_path, cache, capsys):
    """prepare() returns the datasets it made, so it never shortcuts; the CLI reuses what it wrote."""
    out = tmp_path / "out"
    config = {"source": str(source), "output": str(out), "cache_dir": str(cache), "num_proc": 1, "vocab_size": 500,
              "overwrite": True}
    first = prepare(PrepareConfig(**config))
    assert UP_TO_DATE in _run(capsys, _argv(source, out, cache))
    again = prepare(PrepareConfig(**config))
    assert again.dataset["train"].num_rows == first.dataset["train"].num_rows > 0
    assert again.tokenizer.fingerprint == first.tokenizer.fingerprint and again.info["splits"] == first.info["splits"]


def test_demo_is_never_up_to_date(tmp_path, cache, capsys):
    argv = ["--source", "demo", "--output", str(tmp_path / "out"), "--cache-dir", str(cache), "--num-proc", "1",
            "--vocab-size", "300", "--overwrite"]
    _run(capsys, argv)
    assert UP_TO_DATE not in _run(capsys, argv)
    assert not uptodate.record_path(tmp_path / "out", cache).exists()


def test_the_command_answers_an_up_to_date_output_without_importing_datasets(source, tmp_path, cache, capsys):
    out = tmp_path / "out"
    _run(capsys, _argv(source, out, cache))
    script = ("import sys, tinystories_hf_cli\n"
              f"code = tinystories_hf_cli.prepare({_argv(source, out, cache)!r})\n"
              "heavy = [m for m in ('datasets', 'pyarrow', 'numpy', 'tokenizers', 'torch') if m in sys.modules]\n"
              "print('heavy:', heavy)\n"
              "sys.exit(code)\n")
    run = processes.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert UP_TO_DATE in run.stdout and "heavy: []" in run.stdout


@pytest.mark.parametrize("env", [{}, {"XDG_CACHE_HOME": "/x/xdg"}, {"HF_HOME": "~/hf-home"},
                                 {"HF_HOME": "/h", "XDG_CACHE_HOME": "/x"},
                                 {"HF_DATASETS_CACHE": "/d/cache", "HF_HOME": "/h"}])
def test_the_default_cache_folder_is_datasets_own(env):
    clean = {k: v for k, v in os.environ.items() if k not in ("HF_DATASETS_CACHE", "HF_HOME", "XDG_CACHE_HOME")}
    script = ("import datasets.config\nfrom tinystories_hf.store.uptodate import datasets_cache_folder\n"
              "print(datasets_cache_folder() == datasets.config.HF_DATASETS_CACHE, datasets_cache_folder())")
    run = processes.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, env={**clean, **env},
                         timeout=120)
    assert run.returncode == 0 and run.stdout.startswith("True "), run.stdout + run.stderr[-2000:]
