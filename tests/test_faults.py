"""Bad input of every kind: a one-line error or a counted skip, never a traceback, never a changed previous
output. Then SIGKILL at several points of a run, and the security rules of the data path."""
import dataclasses
import errno
import gzip
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import huggingface_hub
import numpy as np
import processes
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, SAMPLE_EOT, SAMPLE_JSONL

from tinystories_hf import PrepareConfig, TinyStoriesError, TinyStoriesTokenizer, prepare
from tinystories_hf.pipeline import main
from tinystories_hf.store.folder import tree_sha256
from tinystories_hf.store.validate import validate_prepared
from tinystories_hf.vocabulary.base import load_base_tokenizer
from tinystories_hf.vocabulary.encoders import HFEncoder, TiktokenEncoder

GOOD = "Once upon a time, a little dog named Max ran to the park to play with his red ball. He was very happy."
EOT = "<|endoftext|>\n"
BIN = Path(sys.executable).parent


def _stories(n: int, sep: str = "\n") -> str:
    return "".join(f"{GOOD} Story {i}.{sep}{EOT.replace(chr(10), sep)}" for i in range(n))


def _write(tmp: Path, name: str, content) -> str:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _parquet(tmp: Path, name: str, table: pa.Table) -> str:
    pq.write_table(table, tmp / name)
    return str(tmp / name)


def _bad_second_file(tmp: Path) -> str:
    """A folder of two train files, the second with a bad byte in its 4th row (row 8 of the split)."""
    _write(tmp, "f/data/train-00000.jsonl", _jsonl([{"text": GOOD}] * 5))
    _write(tmp, "f/data/train-00001.jsonl", _jsonl([{"text": GOOD}] * 3).encode() + b'{"text": "caf\xe9"}\n')
    return str(tmp / "f")


def _src(make):
    """Case whose --source is built by `make(tmp)`."""
    return lambda tmp, prev: ["--source", make(tmp)]


def _opts(*args):
    """Case with a good source (the demo corpus) and bad options."""
    return lambda tmp, prev: ["--source", "demo", *args]


def _hub_offline(tmp, prev):
    # The Hub is unreachable on CI machines; offline mode makes the same failure immediate.
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    return ["--source", "nobody/no-such-dataset"]


def _inside_source(tmp, prev):
    _write(tmp, "src/train.txt", _stories(5))
    return ["--source", str(tmp / "src"), "--output", str(tmp / "src" / "prepared")]


def _output_is_a_folder_of_mine(tmp, prev):
    _write(tmp, "mine/notes.txt", "my notes")
    return ["--source", "demo", "--output", str(tmp / "mine"), "--overwrite"]


# (case id, argv maker (tmp, previous output) -> args, the expected error line). Unless a case names its own
# --output, it writes to the previous complete output with --overwrite, which must survive unchanged.
ERRORS = [
    ("empty-txt", _src(lambda t: _write(t, "s.txt", "")), r"s\.txt: the file is empty"),
    ("empty-jsonl", _src(lambda t: _write(t, "s.jsonl", "")), r"s\.jsonl: the file is empty"),
    ("whitespace-only-txt", _src(lambda t: _write(t, "s.txt", "\n \n\t\n")), r"s\.txt: the file holds no stories \(only whitespace\)"),
    ("only-separators-txt", _src(lambda t: _write(t, "s.txt", EOT * 50)),
     r"no train story has --min-length 10 tokens or more \(49 read: 49 empty or not text, 0 too short\)"),
    ("all-stories-too-short", _src(lambda t: _write(t, "s.jsonl", _jsonl([{"text": "Hi."}] * 20))),
     r"no train story .* \(19 read: 0 empty or not text, 19 too short\); check --text-column or lower --min-length"),
    ("one-story-only", _src(lambda t: _write(t, "s.txt", _stories(1))), r"only 1 story; at least 2 are needed"),
    ("invalid-utf8-txt", _src(lambda t: _write(t, "s.txt", _stories(3).encode() + b"caf\xe9\n" + EOT.encode())),
     rf"s\.txt: line 7: not valid UTF-8 at byte offset {len(_stories(3).encode()) + 3}; re-encode"),
    ("invalid-utf8-jsonl", _src(lambda t: _write(t, "s.jsonl", _jsonl([{"text": GOOD}] * 4).encode()
                                                 + b'{"text": "caf\xe9"}\n')),
     r"s\.jsonl: line 5: not valid UTF-8"),
    # two files converted by two processes into two cache files, checked in parallel: the row counts across both
    ("invalid-utf8-second-file", lambda t, prev: ["--source", _bad_second_file(t), "--num-proc", "2"],
     r"train-00001\.jsonl: line 4: not valid UTF-8"),
    ("json-number-story", _src(lambda t: _write(t, "s.jsonl", _jsonl([{"text": GOOD}, {"text": 5}, {"text": GOOD}]))),
     r"s\.jsonl: line 2: 'text' holds a number, not a string"),
    ("json-list-story", _src(lambda t: _write(t, "s.jsonl", _jsonl([{"text": GOOD}, {"text": ["a", "b"]}]))),
     r"s\.jsonl: line 2: 'text' holds an array, not a string"),
    ("json-object-story", _src(lambda t: _write(t, "s.jsonl", _jsonl([{"text": {"a": 1}}] * 3))),
     r"s\.jsonl: line 1: 'text' holds an object, not a string"),
    ("broken-json-line", _src(lambda t: _write(t, "s.jsonl", _jsonl([{"text": GOOD}] * 3) + '{"text": "cut\n')),
     r"s\.jsonl: line 4: not valid JSON \(Unterminated string"),
    ("not-gzip", _src(lambda t: _write(t, "s.jsonl.gz", "plain text, not gzip")),
     r"could not read .*s\.jsonl\.gz: BadGzipFile"),
    ("truncated-gzip", _src(lambda t: _write(t, "s.jsonl.gz", gzip.compress(_jsonl([{"text": GOOD}] * 500).encode())[:300])),
     r"could not read .*s\.jsonl\.gz: .*(EOFError|Compressed file ended)"),
    ("parquet-without-text", _src(lambda t: _parquet(t, "s.parquet", pa.table({"story": [GOOD] * 5}))),
     r"s\.parquet: no column 'text' \(columns found: story\); pass --text-column NAME"),
    ("parquet-int-text", _src(lambda t: _parquet(t, "s.parquet", pa.table({"text": list(range(5))}))),
     r"s\.parquet: column 'text' holds int64, not text"),
    ("parquet-garbage", _src(lambda t: _write(t, "s.parquet", os.urandom(2000))),
     r"could not read .*s\.parquet: ArrowInvalid: .*magic bytes"),
    ("parquet-zero-rows", _src(lambda t: _parquet(t, "s.parquet", pa.table({"text": pa.array([], pa.string())}))),
     r"s\.parquet: the parquet file has no rows"),
    ("unsupported-csv", _src(lambda t: _write(t, "s.csv", "text\nhello\n")), r"s\.csv: unsupported file type"),
    ("missing-train-split", _src(lambda t: _write(t, "d/validation.jsonl", _jsonl([{"text": GOOD}] * 3))
                                 and str(t / "d")), r"no 'train' split \(splits found: validation\)"),
    ("empty-folder", _src(lambda t: (t / "d").mkdir() or str(t / "d")),
     r"could not read .*d: EmptyDatasetError: .*doesn't contain any data files"),
    ("missing-path", _src(lambda t: str(t / "nope.jsonl")), r"source '.*nope\.jsonl' not found"),
    ("wrong-text-column", lambda t, p: ["--source", "demo", "--text-column", "story"],
     r"demo: split 'train' has no column 'story' \(columns found: text\)"),
    ("hub-unreachable", _hub_offline, r"could not load Hub dataset 'nobody/no-such-dataset' .*--source demo"),
    ("vocab-below-specials", _opts("--vocab-size", "2"), r"--vocab-size 2 is too small: it must hold EOS, UNK"),
    ("vocab-over-uint16", _opts("--vocab-size", "70000"), r"--vocab-size 70000 does not fit the uint16"),
    ("vocab-over-base", _opts("--vocab-size", "60000"), r"--vocab-size 60000 exceeds the base tokenizer's"),
    ("max-below-min", _opts("--max-length", "5"), r"--max-length 5 is below --min-length 10"),
    ("min-length-negative", _opts("--min-length", "-1"), r"--min-length -1 must be at least 0 \(0 keeps every non-empty story\)"),
    ("num-proc-zero", _opts("--num-proc", "0"), r"--num-proc 0 must be at least 1"),
    ("validation-fraction-zero", _opts("--validation-fraction", "0"), r"--validation-fraction 0.0 must be between"),
    ("vocab-sample-zero", _opts("--vocab-sample-size", "0"), r"--vocab-sample-size 0 must be positive or 'all'"),
    ("unknown-backend", _opts("--backend", "fast"), r"--backend fast is not one of auto, hf, tiktoken"),
    ("missing-tokenizer", _opts("--tokenizer", "/nonexistent/tokenizer"),
     r"could not load tokenizer '/nonexistent/tokenizer'"),
    ("cache-dir-is-file", lambda t, p: ["--source", "demo", "--cache-dir", _write(t, "cache", "x")],
     r"--cache-dir .*cache is a file; pass a folder"),
    ("output-exists", lambda t, p: ["--source", "demo", "--output", str(p)], r"already exists; pass --overwrite"),
    ("output-is-a-file", lambda t, p: ["--source", "demo", "--output", _write(t, "f", "x"), "--overwrite"],
     r"f is a file, not a prepared dataset folder"),
    ("output-under-a-file", lambda t, p: ["--source", "demo", "--output", _write(t, "f", "x") + "/out"],
     r"cannot write to .*f/out: .*f is a file"),
    ("output-unwritable", lambda t, p: ["--source", "demo", "--output", "/sys/tinystories-out"],
     r"cannot write to /sys \((Operation not permitted|Permission denied)\)"),
    ("output-inside-source", _inside_source, r"--output .*src/prepared overlaps the source .*src; write it elsewhere"),
    ("output-is-the-source", lambda t, p: ["--source", _write(t, "s.jsonl", _jsonl([{"text": GOOD}] * 3)),
                                           "--output", str(t / "s.jsonl"), "--overwrite"], r"s\.jsonl is a file"),
    ("output-is-not-prepared", _output_is_a_folder_of_mine, r"mine exists and is not a prepared dataset folder"),
]


@pytest.fixture(scope="module")
def previous(tmp_path_factory):
    """A complete prepared folder that every failing run targets (with --overwrite) and must leave alone."""
    out = tmp_path_factory.mktemp("previous") / "prepared"
    prepare(PrepareConfig(source="demo", output=str(out), vocab_size=300, num_proc=1))
    return out


def _error_line(stderr: str) -> str:
    """The run's stderr holds no traceback and exactly one `error:` line, its last non-progress line."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and stderr.rstrip().endswith(errors[0]), stderr
    return errors[0]


@pytest.mark.parametrize("make, message", [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS])
def test_bad_input_is_one_line_error_and_the_previous_output_survives(previous, tmp_path, capsys, monkeypatch,
                                                                      make, message):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", datasets.config.HF_HUB_OFFLINE)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", huggingface_hub.constants.HF_HUB_OFFLINE)
    before = tree_sha256(previous)
    args = make(tmp_path, previous)
    if "--output" not in args:
        args += ["--output", str(previous), "--overwrite"]
    listing = sorted(p.name for p in tmp_path.iterdir())
    assert main(["--vocab-size", "300", "--num-proc", "1", "--cache-dir", str(tmp_path / "hf"), *args]) == 2
    line = _error_line(capsys.readouterr().err)
    assert re.search(message, line), line
    assert tree_sha256(previous) == before
    # no partial folder left behind; the lock file stays, so that a waiting writer and the holder share it
    assert sorted(p.name for p in previous.parent.iterdir()) == [f".{previous.name}.lock", previous.name]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "hf") == [n for n in listing if n != "hf"]


@pytest.mark.parametrize("args, message", [
    (["--vocab-size", "abc"], "argument --vocab-size: invalid int value: 'abc' (an integer or 'full')"),
    (["--max-length", "long"], "argument --max-length: invalid int value: 'long' (an integer or 'none')"),
    (["--num-proc", "two"], "argument --num-proc: invalid int value: 'two'"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
])
def test_malformed_options_are_rejected_by_argparse(capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        main(["--source", "demo", "--output", "unused", *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].endswith(message) and "Traceback" not in err


def _run_ok(tmp: Path, source: str, *extra) -> dict:
    out = tmp / "out"
    assert main(["--source", source, "--output", str(out), "--vocab-size", "300", "--num-proc", "1", "--keep-text",
                 "--cache-dir", str(tmp / "hf"), *extra]) == 0
    validate_prepared(out)
    dataset = datasets.load_from_disk(str(out))
    info = json.loads((out / "prepare_info.json").read_text())
    total = {k: sum(c[k] for c in info["splits"].values()) for k in info["splits"]["train"]}
    return {"total": total, "texts": [t for split in dataset.values() for t in split["text"]], "dataset": dataset}


def test_counted_skips_null_empty_blank_short_rows(tmp_path):
    rows = [{"text": GOOD}, {"text": None}, {"text": ""}, {"text": " \n\t "}, {}, {"text": "Hi."}, {"text": GOOD + "!"}]
    run = _run_ok(tmp_path, _write(tmp_path, "s.jsonl", _jsonl(rows)), "--validation-fraction", "0.3")
    assert {k: run["total"][k] for k in ("stories", "kept", "skipped_empty", "skipped_short")} == \
        {"stories": 7, "kept": 2, "skipped_empty": 4, "skipped_short": 1}


def test_a_5mb_story_is_truncated_and_counted(tmp_path):
    big = (GOOD + " ") * 50_000  # 5.2 MB, one story, no separator inside
    source = _write(tmp_path, "s.txt", big + "\n" + EOT + _stories(3))
    assert Path(source).stat().st_size > 5_000_000
    run = _run_ok(tmp_path, source)
    assert run["total"]["stories"] == run["total"]["kept"] == 4 and run["total"]["truncated"] == 1
    lengths = [n for split in run["dataset"].values() for n in split["length"]]
    assert max(lengths) == 512 and run["total"]["tokens_before_truncation"] > 1_000_000


def test_nul_bytes_are_kept_as_text(tmp_path):
    story = GOOD.replace("dog", "d\x00og")
    run = _run_ok(tmp_path, _write(tmp_path, "s.txt", (story + "\n" + EOT) * 6))
    assert run["total"]["kept"] == 6 and all(t == story for t in run["texts"])


def test_mixed_line_endings_are_normalised(tmp_path):
    content = _stories(5, sep="\r\n") + _stories(5) + GOOD + " no final separator"
    run = _run_ok(tmp_path, _write(tmp_path, "s.txt", content))
    expected = {f"{GOOD} Story {i}." for i in range(5)} | {GOOD + " no final separator"}
    assert run["total"]["stories"] == run["total"]["kept"] == 11
    assert set(run["texts"]) == expected and not any("\r" in t for t in run["texts"])


@pytest.mark.parametrize("make, message", [
    (lambda t: ["--source", _write(t, "s.txt", b"\xff\xfe" + _stories(3).encode()), "--output", str(t / "o")],
     r"s\.txt: line 1: not valid UTF-8 at byte offset 0"),
    (lambda t: ["--source", _write(t, "d/validation.jsonl", _jsonl([{"text": GOOD}])).rsplit("/", 1)[0],
                "--output", str(t / "o")], r"no 'train' split"),
    (lambda t: ["--source", "demo", "--vocab-size", "1", "--output", str(t / "o")], r"--vocab-size 1 is too small"),
    (lambda t: ["--source", "demo", "--output", "/proc/tinystories-out"], r"cannot write to /proc"),
])
def test_the_installed_command_exits_2_with_one_line(tmp_path, make, message):
    run = processes.run([str(BIN / "tinystories-prepare"), *make(tmp_path)], capture_output=True, text=True,
                         timeout=300, check=False)
    assert run.returncode == 2
    assert re.search(message, _error_line(run.stderr))
    assert not (tmp_path / "o").exists()


def test_report_and_validate_of_a_missing_folder_are_one_line(tmp_path):
    for command in ("tinystories-report", "tinystories-validate"):
        run = processes.run([str(BIN / command), str(tmp_path / "missing")], capture_output=True, text=True,
                             check=False)
        assert run.returncode == 2 and "missing" in _error_line(run.stderr)


# ---- Errors keep their text at every boundary: worker processes, the machine's faults, the Python API ----

def _v2_text_with_a_bad_byte_near_the_end(tmp: Path) -> tuple:
    """The sample's stories twice as one V2 .txt (about 9 MB) with `caf\xe9` 1000 bytes before the end; and
    the byte offset of the \xe9, counted here from the bytes written."""
    data = SAMPLE_EOT.read_bytes() * 2
    at = len(data) - 1000
    path = tmp / "stories.txt"
    path.write_bytes(data[:at] + b"caf\xe9" + data[at:])
    return path, at + 3


@pytest.mark.parametrize("num_proc", [1, 2])
def test_an_error_in_a_worker_process_is_the_same_one_line(previous, tmp_path, capsys, num_proc):
    """datasets reads the .txt in 2 worker processes (one byte range each): the worker's TinyStoriesError comes
    back through multiprocess's RemoteTraceback, and is printed as the same line as with one process."""
    source, offset = _v2_text_with_a_bad_byte_near_the_end(tmp_path)
    line = source.read_bytes()[:offset].count(b"\n") + 1
    expected = f"{source}: line {line}: not valid UTF-8 at byte offset {offset}; re-encode the file as UTF-8 (e.g. " \
               "iconv -f latin1 -t utf-8)"
    assert main(["--source", str(source), "--output", str(previous), "--overwrite", "--num-proc", str(num_proc),
                 "--cache-dir", str(tmp_path / "cli")]) == 2
    assert _error_line(capsys.readouterr().err) == f"error: {expected}"
    with pytest.raises(TinyStoriesError) as raised:  # the Python API raises the same error
        prepare(PrepareConfig(source=str(source), output=str(tmp_path / "api"), num_proc=num_proc,
                              cache_dir=str(tmp_path / "api-cache")))
    assert str(raised.value) == expected


def _pad(folder: Path, leave_bytes: int) -> None:
    """Fill the filesystem of `folder` until `leave_bytes` remain free."""
    stat = os.statvfs(folder)
    (folder / "pad").write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave_bytes))


def _on(size: str, name: str = ""):
    """The path `name` on a tmpfs of `size` mounted at tmp/m."""
    return lambda mount: str(mount("m", size) / name) if name else str(mount("m", size))


# (case id, args (a mount function -> args), bytes left free on the mount or None, the expected error line with
# {m} its mount point). The V2 text (the sample twice, 11,040 stories) is tokenized by 2 workers with --num-proc 2.
TEXT = "stories.txt"
OS_FAULTS = [
    ("cache-disk-full", lambda m: ["--source", TEXT, "--keep-text", "--num-proc", "1", "--cache-dir",
                                   _on("size=30m", "c")(m)],
     None, "error: {m}/c: no space left on its device; free space there or pass another --cache-dir"),
    ("cache-disk-full-2-workers", lambda m: ["--source", TEXT, "--keep-text", "--num-proc", "2", "--cache-dir",
                                             _on("size=30m", "c")(m)],
     None, "error: {m}/c: no space left on its device; free space there or pass another --cache-dir"),
    ("cache-disk-full-converting-jsonl", lambda m: ["--source", str(SAMPLE_JSONL), "--cache-dir",
                                                    _on("size=3m", "c")(m)],  # said "could not read SOURCE" before
     None, "error: {m}/c: no space left on its device; free space there or pass another --cache-dir"),
    ("output-disk-full", lambda m: ["--source", str(SAMPLE_JSONL), "--keep-text", "--output", _on("size=30m", "out")(m)],
     8 << 20, "error: {m}/out: no space left on its device; free space there or choose another --output"),
    ("cache-read-only", lambda m: ["--source", str(SAMPLE_JSONL), "--cache-dir", _on("ro,size=1m", "c")(m)],
     None, "error: {m}/c: read-only file system; pass another --cache-dir on a writable filesystem"),
    ("output-read-only", lambda m: ["--source", "demo", "--output", _on("ro,size=1m", "out")(m)],
     None, "error: cannot write to {m} (Read-only file system); choose a writable --output"),
    ("output-is-a-mount-point", lambda m: ["--source", "demo", "--output", _on("size=1m")(m), "--overwrite"],
     None, ("error: {m} is a mount point, which cannot be replaced by a rename; write to a folder inside it "
            "(--output {m}/prepared)")),
]


@pytest.mark.parametrize("make, free, expected", [case[1:] for case in OS_FAULTS], ids=[case[0] for case in OS_FAULTS])
def test_os_faults_are_one_line_naming_the_path_and_the_option(previous, tmp_path, mount_tmpfs, capsys, monkeypatch,
                                                              make, free, expected):
    (tmp_path / TEXT).write_bytes(SAMPLE_EOT.read_bytes() * 2)
    monkeypatch.chdir(tmp_path)
    args = make(mount_tmpfs)
    if "--output" not in args:
        args += ["--output", str(previous), "--overwrite"]
    if free is not None:
        _pad(tmp_path / "m", free)  # room for nothing as large as the output
    before = tree_sha256(previous)
    assert main(["--vocab-size", "300", *args]) == 2
    assert _error_line(capsys.readouterr().err) == expected.format(m=tmp_path / "m")
    assert tree_sha256(previous) == before
    leftovers = [p.name for p in (tmp_path / "m").rglob("*") if p.name.startswith(("tmp", ".out.partial"))]
    assert leftovers == []  # no temporary file or partial folder holds the space


def test_disk_full_replacing_an_output_keeps_it_and_the_api_names_api_arguments(previous, tmp_path, mount_tmpfs):
    out = mount_tmpfs("m", "size=30m") / "out"
    shutil.copytree(previous, out)
    before = tree_sha256(out)
    _pad(out.parent, 4 << 20)
    with pytest.raises(TinyStoriesError) as raised:
        prepare(PrepareConfig(source=str(SAMPLE_JSONL), output=str(out), overwrite=True, keep_text=True,
                              vocab_size=300, cache_dir=str(tmp_path / "cache")))
    assert str(raised.value) == f"{out}: no space left on its device; free space there or choose another output"
    assert tree_sha256(out) == before and sorted(p.name for p in out.parent.iterdir()) == [".out.lock", "out", "pad"]


def test_a_read_only_hf_home_is_one_line(tmp_path, mount_tmpfs):
    home = mount_tmpfs("m", "ro,size=1m") / "hf"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    run = processes.run([str(BIN / "tinystories-prepare"), "--source", str(SAMPLE_JSONL), "--output",
                          str(tmp_path / "out")], env=dict(env, HF_HOME=str(home)), capture_output=True, text=True,
                         timeout=300, check=False)
    assert run.returncode == 2
    assert re.fullmatch(rf"error: {home}\S*: read-only file system; set HF_HOME to another folder on a writable "
                        "filesystem", _error_line(run.stderr))


@pytest.mark.parametrize("fault, expected", [
    (lambda p: OSError(errno.EBUSY, "Device or resource busy", p["out"]),
     ("{out}: busy (a mount point, or in use by another program); a mount point cannot be replaced: choose another "
      "--output (e.g. a folder inside it)")),
    (lambda p: OSError(errno.EXDEV, "Invalid cross-device link", p["out"]),
     ("{out}: on another filesystem than the folder beside it (a mount point?); choose another --output (not a "
      "mount point)")),
    (lambda p: PermissionError(errno.EACCES, "Permission denied", p["cache"] / "x.arrow"),
     "{cache}/x.arrow: permission denied; pass another --cache-dir or fix its permissions"),
    (lambda p: OSError(errno.EMFILE, "Too many open files"),
     "too many open files; raise the limit (ulimit -n) or lower --num-proc"),
    # A copy names its source first and its destination second: a full disk is the destination's.
    (lambda p: OSError(errno.ENOSPC, "No space left on device", p["cache"] / "src.json", None, p["out"] / "x.json"),
     "{out}/x.json: no space left on its device; free space there or choose another --output"),
    # The hidden partial folder beside the output is the output's place ("set TMPDIR" or no option before).
    (lambda p: OSError(errno.EROFS, "Read-only file system", p["out"].parent / ".out.partial" / "train"),
     "{tmp}/.out.partial/train: read-only file system; choose another --output on a writable filesystem"),
    # pyarrow drops the file name but quotes the path in its message.
    (lambda p: PermissionError(errno.EACCES, f"Failed to open local file '{p['cache']}/y.arrow'. Detail: [errno 13] "
                                             "Permission denied"),
     "{cache}/y.arrow: permission denied; pass another --cache-dir or fix its permissions"),
    # A file of no place this run writes (an input): no option moves it ("set TMPDIR" before, for one under /tmp).
    (lambda p: PermissionError(errno.EACCES, "Permission denied", p["out"].parent / "input.jsonl"),
     "{tmp}/input.jsonl: permission denied; fix its permissions"),
    (lambda p: MemoryError(), "out of memory; free memory or lower --num-proc, then run again"),
])
def test_os_faults_of_every_kind_name_the_place_and_its_option(tmp_path, monkeypatch, capsys, fault, expected):
    """Faults that need a race or a kernel limit to happen for real (a rename onto a mount point, EXDEV, EMFILE),
    raised where prepare raises them."""
    places = {"out": tmp_path / "out", "cache": tmp_path / "cache", "tmp": tmp_path}

    def fail(*args, **kwargs):
        raise fault(places)

    monkeypatch.setattr("tinystories_hf.pipeline.save_prepared", fail)
    assert main(["--source", "demo", "--output", str(places["out"]), "--vocab-size", "300", "--num-proc", "1",
                 "--cache-dir", str(places["cache"])]) == 2
    assert _error_line(capsys.readouterr().err) == "error: " + expected.format(**places)


def test_api_errors_name_api_arguments_and_push_names_its_own_flags(previous, tmp_path, capsys):
    with pytest.raises(TinyStoriesError, match=r"already exists; pass overwrite=True to replace it or choose another "
                                               r"output$"):
        prepare(PrepareConfig(source="demo", output=str(previous)))
    with pytest.raises(TinyStoriesError, match=r"^vocab_size=2 is too small"):
        prepare(PrepareConfig(source="demo", output=str(tmp_path / "o"), vocab_size=2))
    from tinystories_hf.hub.push import main as push_main

    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "prepare_info.json").write_text("{}")
    assert push_main([str(previous), "--to-folder", str(tmp_path / "hub")]) == 2
    assert _error_line(capsys.readouterr().err) == (f"error: {tmp_path / 'hub'} already exists; pass --overwrite to "
                                                    "replace it or choose another --to-folder")


def test_an_unreachable_hub_is_one_line_at_once(tmp_path, monkeypatch, capsys):
    """Not in offline mode, with a Hub endpoint nothing answers on (the discard port of this machine): one
    probe stops the run before any Hub request, so no retries (about 24 s of them before). No test touches the
    network."""
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)

    def no_request(*args, **kwargs):
        raise AssertionError("the probe must stop the run before datasets makes a Hub request")

    monkeypatch.setattr(datasets, "load_dataset", no_request)
    assert main(["--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "hf")]) == 2
    assert _error_line(capsys.readouterr().err) == (
        "error: could not load Hub dataset 'roneneldan/TinyStories': the Hub (http://127.0.0.1:9) cannot be reached "
        "(Connection refused); pass a local copy with --source PATH or try --source demo, or set HF_HUB_OFFLINE=1 "
        "to use a copy already in the Hugging Face cache")


# ---- Tokenizer inputs: ids are integers in [0, vocab_size), EOS works for any base, both backends agree ----

@pytest.mark.parametrize("ids, error, message", [
    ([3.7], TypeError, "token ids must be integers, not float64: [3.7]"),  # decoded id 3 before
    ([[2, 3], [4, 5]], ValueError, "token ids must be a flat sequence of integers, not of shape (2, 2)"),  # flattened
    ([[2, 3], [4]], ValueError, "token ids must be a flat sequence of integers"),
    ([-1], ValueError, "token id -1 (position 0) is out of range [0, 300)"),  # gave the last token before
    ([2, 300], ValueError, "token id 300 (position 1) is out of range [0, 300)"),
    ([2, 10**30], ValueError, f"token id {10**30} is out of range [0, 300)"),
    (["3"], TypeError, "token ids must be integers, not <U1: ['3']"),
    ([True], TypeError, "token ids must be integers, not bool: [True]"),
    ("7", TypeError, "token ids must be integers, not str '7'"),
])
def test_ids_that_are_not_integers_in_range_raise(previous, ids, error, message):
    tokenizer = TinyStoriesTokenizer.from_pretrained(previous)
    for call in (tokenizer.decode, tokenizer.convert_ids_to_tokens):
        with pytest.raises(error) as raised:
            call(ids)
        assert str(raised.value).startswith(message), str(raised.value)


def test_valid_ids_of_every_container_decode_alike(previous):
    tokenizer = TinyStoriesTokenizer.from_pretrained(previous)
    ids = tokenizer.encode("Once upon a time")
    text = tokenizer.decode(ids)
    assert text == "Once upon a time"
    for same in (np.array(ids, dtype=np.uint16), np.array(ids, dtype=np.int64), tuple(ids)):
        assert tokenizer.decode(same) == text
    assert tokenizer.decode([]) == "" and tokenizer.decode(ids[0]) == "Once"
    assert tokenizer.convert_ids_to_tokens(ids[0]) == "Once" and tokenizer.convert_ids_to_tokens([0, 1]) == [
        "<|endoftext|>", "<|unk|>"]


def test_eos_and_unk_for_a_base_tokenizer_without_endoftext(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    base = Tokenizer(models.WordLevel({"once": 0, "upon": 1, "a": 2, "time": 3, "[UNK]": 4}, unk_token="[UNK]"))
    base.pre_tokenizer = pre_tokenizers.Whitespace()
    assert base.token_to_id("<|endoftext|>") is None
    tokenizer = TinyStoriesTokenizer.from_counts(base, np.array([9, 7, 5, 3, 0]), 5, backend="hf")
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ["<|endoftext|>", "<|unk|>", "once", "upon", "a"]
    assert tokenizer.convert_ids_to_tokens(0) == "<|endoftext|>"  # raised OverflowError before
    assert tokenizer.encode("once upon a time") == [2, 3, 4, 1]
    assert tokenizer.decode([2, 0, 3, 1]) == "once<|endoftext|>upon<|unk|>"
    loaded = TinyStoriesTokenizer.from_pretrained(tokenizer.save_pretrained(tmp_path / "tok"), backend="hf")
    assert loaded.fingerprint == tokenizer.fingerprint and loaded.convert_ids_to_tokens(0) == "<|endoftext|>"


@pytest.mark.parametrize("text", ["caf\ud800e", "\ud83d\ude00 and \udfff", "a\udc80"])
def test_both_backends_encode_a_lone_surrogate_as_the_replacement_character(previous, text):
    """A Python str may hold a lone surrogate (a UTF-8 file never does): both backends encode it as U+FFFD, as
    tiktoken documents, after joining a surrogate pair into its character."""
    replaced = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    assert "\ufffd" in replaced
    expected = load_base_tokenizer().encode(replaced).ids  # the tokenizers library on the valid text
    hf, tiktoken = HFEncoder(load_base_tokenizer()), TiktokenEncoder()
    for encoder in (hf, tiktoken):
        assert encoder.encode_batch([text]) == [expected], encoder.name
        assert encoder.encode_flat([text], np.uint16)[1].tolist() == expected, encoder.name
    reduced = [TinyStoriesTokenizer.from_pretrained(previous, backend=b).encode(text) for b in ("hf", "tiktoken")]
    assert reduced[0] == reduced[1] == TinyStoriesTokenizer.from_pretrained(previous).remap(expected).tolist()


def test_the_report_runs_the_installed_measurements_not_a_cached_copy(previous, tmp_path, monkeypatch):
    """evaluate.load would run its copy in the modules cache under HF_HOME, which anyone who can write there can
    edit: the report imports the package's own modules and never calls it."""
    import evaluate

    from tinystories_hf.report.measurements import token_stats
    from tinystories_hf.report.write import write_report

    def refuse(*args, **kwargs):
        raise AssertionError("the report must not load measurements through evaluate's module cache")

    monkeypatch.setattr(evaluate, "load", refuse)
    monkeypatch.setattr(evaluate.loading, "evaluation_module_factory", refuse)
    report = write_report(shutil.copytree(previous, tmp_path / "copy"))
    lengths = [n for n in datasets.load_from_disk(str(previous / "validation"))["length"]]
    assert report["splits"]["validation"]["tokens"] == sum(lengths)
    assert Path(token_stats.__file__).parent == REPO / "tinystories_hf" / "report" / "measurements"


# ---- Kills and interrupts at fixed points: the target is the previous or the new complete output, and a rerun
# ---- leaves nothing else (no partial or previous folder, no datasets temporary file); Ctrl-C is one line.

# `patch(stage)` replaces one step of tinystories-prepare by a pause that first drops a marker file, so the test
# can SIGKILL (or interrupt) the run at that exact point, never by timing. DRIVER runs it as a command.
PATCH = r"""
import os, shutil, sys, time
from pathlib import Path
from tinystories_hf import pipeline
from tinystories_hf.tokenize import passes as tokenize
from tinystories_hf.utils import atomic
from tinystories_hf.vocabulary import base as base_tokenizer, tokenizer as vocab

real_rmtree, real_exchange, real_rename = shutil.rmtree, atomic.exchange, os.rename

def pause(*args, **kwargs):
    open(os.environ["KILL_MARKER"], "w").close()
    time.sleep(600)

def then_pause(function):
    def run(*args, **kwargs):
        function(*args, **kwargs)
        pause()
    return run

def half_then_pause(name):  # remove part of the folder being cleaned up, then pause
    def rmtree(path, *args, **kwargs):
        if Path(path).name.endswith(name) and (Path(path) / "train").exists():
            real_rmtree(Path(path) / "train")
            pause()
        return real_rmtree(path, *args, **kwargs)
    return rmtree

def wait_for_go(function):
    def run(*args, **kwargs):
        open(os.environ["KILL_MARKER"], "w").close()
        while not os.path.exists(os.environ["GO"]):
            time.sleep(0.05)
        return function(*args, **kwargs)
    return run

def patch(stage):
    if stage == "tokenizing":  # in a map worker at its second batch: datasets' temporary file exists by then
        make_encoder = base_tokenizer.make_encoder
        def paused_make_encoder(*args, **kwargs):  # whichever encoder the run picks (auto: fastokens or tiktoken)
            encoder, calls = make_encoder(*args, **kwargs), []
            encode_flat = encoder.encode_flat
            def paused_encode_flat(texts, dtype):
                calls.append(len(texts))  # call 1 is the parent's warm-up before the fork
                if len(calls) == 3:
                    pause()
                return encode_flat(texts, dtype)
            encoder.encode_flat = paused_encode_flat
            return encoder
        pipeline.make_encoder = paused_make_encoder
    elif stage == "counting":
        pipeline.count_base_tokens = pause
    elif stage == "remapping":
        tokenize.reduce_stories = pause
    elif stage == "saving":
        vocab.TinyStoriesTokenizer.save_pretrained = pause
    elif stage == "hold":  # keep the lock, writing the new output, until the test creates the file GO
        vocab.TinyStoriesTokenizer.save_pretrained = wait_for_go(vocab.TinyStoriesTokenizer.save_pretrained)
    elif stage == "before-exchange":
        atomic.exchange = pause
    elif stage == "after-exchange":
        atomic.exchange = then_pause(real_exchange)
    elif stage == "cleanup":  # the previous output, swapped into .out.partial, half removed
        shutil.rmtree = half_then_pause(".partial")
    elif stage.startswith("fallback"):  # an OS without an atomic exchange: two renames through .out.previous
        atomic.exchange = lambda a, b: False
        if stage == "fallback-between-renames":
            os.rename = lambda a, b: (real_rename(a, b), str(b).endswith(".previous") and pause())
        elif stage == "fallback-cleanup":
            shutil.rmtree = half_then_pause(".previous")
"""
DRIVER = PATCH + "\npatch(sys.argv[1])\nsys.exit(pipeline.main(sys.argv[2:]))\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """20,200 TinyStories-shaped stories (real sentences) as jsonl: tokenizing train takes a few seconds."""
    folder = tmp_path_factory.mktemp("kill") / "corpus"
    processes.run([sys.executable, str(REPO.parent / "shared" / "tools" / "make_corpus.py"), str(folder),
                    "--train", "20000", "--validation", "200", "--layout", "jsonl"], check=True, capture_output=True)
    return folder


def _start(tmp: Path, stage: str, *args, prefix=(), env=None) -> tuple:
    log = tmp / f"{stage}-{time.monotonic_ns()}.log"
    env = dict(os.environ, KILL_MARKER=str(tmp / "marker"), **(env or {}))
    (tmp / "marker").unlink(missing_ok=True)
    with open(log, "wb") as stderr:  # its own session, so a signal to the group reaches the map workers too
        proc = processes.popen([*prefix, sys.executable, "-c", DRIVER, stage, *args], stdout=subprocess.DEVNULL,
                               stderr=stderr, env=env)
    return proc, log


def _wait_for_marker(proc, tmp: Path) -> None:
    processes.wait_until((tmp / "marker").exists, what="the kill point", alive=lambda: proc.poll() is None)


def _kill_at_marker(proc, tmp: Path) -> None:
    _wait_for_marker(proc, tmp)
    os.killpg(proc.pid, signal.SIGKILL)
    processes.finish(proc, what="the killed run")


def _finish(proc, log) -> str:
    code = processes.finish(proc, timeout=600, what="the run")
    assert code == 0, log.read_text()[-2000:]
    return log.read_text()


def _encode_caches(cache: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in cache.rglob("cache-*.arrow")}


def _temporary_files(cache: Path) -> list:
    return sorted(p.name for p in cache.rglob("tmp*") if p.is_file())


def _vocab_size(out: Path) -> int:
    return json.loads((out / "prepare_info.json").read_text())["vocab_size"]


def _processes(*, session: int | None = None, parent: int | None = None) -> list:
    """Live (not zombie) processes of the session `session` or children of `parent`, by /proc/PID/stat."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and (int(fields[3]) == session or int(fields[1]) == parent):
            found.append(int(stat.parent.name))
    return found


def test_sigkill_while_working_leaves_the_previous_output_and_a_rerun_leaves_no_temporary_file(corpus, tmp_path):
    runs, out, cache = tmp_path / "runs", tmp_path / "runs" / "out", tmp_path / "cache"
    runs.mkdir()
    common = ["--source", str(corpus), "--output", str(out), "--num-proc", "2", "--cache-dir", str(cache)]

    # 1. Killed in a tokenizing worker, with no previous output: no target, and datasets' temporary files.
    proc, log = _start(tmp_path, "tokenizing", *common)
    _kill_at_marker(proc, tmp_path)
    assert [p.name for p in runs.iterdir()] == [".out.lock"]
    assert _temporary_files(cache), "the kill point is after the map workers opened their temporary files"

    # 2. A full run after that kill removes them: the previous complete output of the next steps.
    _finish(*_start(tmp_path, "none", *common))
    assert _temporary_files(cache) == []
    previous = tree_sha256(out)
    validate_prepared(out)
    caches = _encode_caches(cache)

    # 3. Killed while counting, remapping and saving a new vocabulary over it: the previous output survives.
    smaller = [*common, "--vocab-size", "5000", "--overwrite"]
    for stage in ("counting", "remapping", "saving"):
        # counts of a vocabulary sample are kept beside the cache (a rerun reads them): another sample is counted
        proc, log = _start(tmp_path, stage, *smaller, *(["--vocab-sample-size", "9000"] if stage == "counting" else []))
        _kill_at_marker(proc, tmp_path)
        if stage == "saving":  # killed with the new data already written to the hidden partial folder
            assert (runs / ".out.partial" / "train" / "dataset_info.json").exists()
        assert tree_sha256(out) == previous, stage
        assert "tokenize train" not in log.read_text()  # the encode pass came from the cache
    validate_prepared(out)

    # 4. The rerun succeeds without re-tokenizing, removes the dead run's partial folder...
    log = _finish(*_start(tmp_path, "none", *smaller))
    assert "tokenize train" not in log
    assert sorted(p.name for p in runs.iterdir()) == [".out.lock", "out"]
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in caches.items())
    assert validate_prepared(out)["vocab_size"] == 5000 and _temporary_files(cache) == []
    # ... and writes exactly what an uninterrupted run with a fresh cache writes.
    fresh = prepare(PrepareConfig(source=str(corpus), output=str(tmp_path / "fresh"), vocab_size=5000, num_proc=2,
                                  cache_dir=str(tmp_path / "fresh-cache")))
    assert json.loads((out / "prepare_info.json").read_text())["data_files"] == \
        json.loads((fresh.output / "prepare_info.json").read_text())["data_files"]


# (kill point, what is beside the target right after the kill, whether the target is already the new output)
REPLACE_KILLS = [
    ("before-exchange", [".out.lock", ".out.partial", "out"], False),
    ("after-exchange", [".out.lock", ".out.partial", "out"], True),
    ("cleanup", [".out.lock", ".out.partial", "out"], True),
    ("fallback-between-renames", [".out.lock", ".out.partial", ".out.previous"], None),
    ("fallback-cleanup", [".out.lock", ".out.previous", "out"], True),
]


def _forked_until_marker(tmp: Path, stage: str, config: PrepareConfig) -> None:
    """Run `prepare(config)` with `patch(stage)` in a forked child (this process's imports: no start-up cost),
    and SIGKILL it at the marker."""
    def child():
        os.environ["KILL_MARKER"] = str(tmp / "marker")
        namespace = {}
        exec(PATCH, namespace)  # noqa: S102 -- the test's own code, patched into the child only
        namespace["patch"](stage)
        prepare(config)

    (tmp / "marker").unlink(missing_ok=True)
    proc = processes.fork(child)
    processes.wait_until((tmp / "marker").exists, what=f"{stage}: the kill point", alive=proc.is_alive)
    os.killpg(proc.pid, signal.SIGKILL)
    processes.finish(proc, what=f"{stage}: the killed run")


def test_sigkill_before_between_and_after_the_renames_and_during_cleanup(tmp_path):
    """Each kill point of the replace, then one rerun: the target is the previous or the new complete output
    at every moment a reader can look (between two renames only a rerun restores it), and nothing is left."""
    runs, out = tmp_path / "runs", tmp_path / "runs" / "out"

    def config(vocab_size):
        return PrepareConfig(source="demo", output=str(out), num_proc=1, vocab_size=vocab_size, overwrite=True)

    prepare(config(300))
    for stage, beside, new in REPLACE_KILLS:
        previous = tree_sha256(out)
        _forked_until_marker(tmp_path, stage, config(400))
        assert sorted(p.name for p in runs.iterdir()) == beside, stage
        if new is None:  # killed between the two renames: the previous output waits in .out.previous
            assert tree_sha256(runs / ".out.previous") == previous
            # a rerun has the lock and has recovered (another vocabulary sample: counts of one are kept beside the cache)
            _forked_until_marker(tmp_path, "counting", dataclasses.replace(config(400), vocab_sample_size=999))
            assert sorted(p.name for p in runs.iterdir()) == [".out.lock", "out"]
            assert tree_sha256(out) == previous
        elif new:
            assert validate_prepared(out)["vocab_size"] == 400, stage
        else:
            assert tree_sha256(out) == previous, stage
        prepare(config(300))
        assert sorted(p.name for p in runs.iterdir()) == [".out.lock", "out"], stage
        assert validate_prepared(out)["vocab_size"] == 300


def test_ctrl_c_while_tokenizing_is_one_line_exit_130_and_leaves_no_worker_or_temporary_file(corpus, previous,
                                                                                             tmp_path):
    out = tmp_path / "out"
    shutil.copytree(previous, out)
    before = tree_sha256(out)
    proc, log = _start(tmp_path, "tokenizing", "--source", str(corpus), "--output", str(out), "--overwrite",
                       "--num-proc", "2", "--cache-dir", str(tmp_path / "cache"))
    _wait_for_marker(proc, tmp_path)
    assert _temporary_files(tmp_path / "cache")  # the workers hold open temporary files now
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    assert processes.finish(proc, what="the interrupted run") == 130
    stderr = log.read_text()
    assert "Traceback" not in stderr and stderr.splitlines()[-1] == f"interrupted; {out} unchanged", stderr[-3000:]
    processes.wait_until(lambda: _processes(session=proc.pid) == [], what="the run's processes to end")  # the terminated pool's workers and datasets' manager are gone
    assert _temporary_files(tmp_path / "cache") == []
    assert tree_sha256(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == [".out.lock"]


def test_two_writers_in_separate_pid_namespaces_one_valid_target_and_one_clean_error(tmp_path):
    """Two containers on one volume: each writer runs in its own PID namespace (PID 1 there), so neither can
    see the other in /proc. The lock beside the target (flock) still holds: the second stops at once."""
    out = tmp_path / "shared-volume" / "out"
    unshare = ["unshare", "--pid", "--fork", "--kill-child"]
    args = ["--source", "demo", "--output", str(out), "--num-proc", "1", "--vocab-size", "300", "--overwrite"]
    first, log = _start(tmp_path, "hold", *args, prefix=unshare, env={"GO": str(tmp_path / "go")})
    _wait_for_marker(first, tmp_path)  # its new output is complete in .out.partial, the lock held
    second = processes.run([*unshare, str(BIN / "tinystories-prepare"), *args[:-2], "400", "--overwrite"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert second.returncode == 2, second.stderr[-2000:]
    assert _error_line(second.stderr) == (f"error: {out} is being written by another run, which holds "
                                          f"{out.parent / '.out.lock'}; wait for it to finish or choose another "
                                          "--output")
    (tmp_path / "go").touch()
    _finish(first, log)
    assert sorted(p.name for p in out.parent.iterdir()) == [".out.lock", "out"]
    assert validate_prepared(out)["vocab_size"] == 300


# ---- Security: nothing in the data path can execute code from a file; tokens never reach output ----

def test_no_pickle_dill_or_torch_load_in_the_package():
    """No module reads a pickle; the one that writes one is nanoGPT's export (meta.pkl, which nanoGPT reads and
    nothing of ours does), with `pickle.dumps` and nothing else of pickle."""
    pattern = re.compile(r"\b(import pickle|import dill|from pickle|from dill|pickle\.\w+|dill\.loads?|"
                         r"torch\.load|allow_pickle\s*=\s*True|joblib|shelve|marshal\.loads?)\b")
    sources = sorted((REPO / "tinystories_hf").rglob("*.py"))
    assert len(sources) >= 14
    found = [f"{p.relative_to(REPO)}:{match}" for p in sources for line in p.read_text().splitlines()
             for match in pattern.findall(line)]
    assert found == ["tinystories_hf/exports/nanogpt.py:import pickle", "tinystories_hf/exports/nanogpt.py:pickle.dumps"]


def test_prepared_folders_hold_only_json_arrow_and_report_files(previous, tmp_path):
    out = shutil.copytree(previous, tmp_path / "copy")
    from tinystories_hf.report.write import write_report

    write_report(out)
    suffixes = {p.suffix for p in out.rglob("*") if p.is_file()}
    assert suffixes == {".json", ".arrow", ".png", ".md", ".py"}
    # the one module: transformers' remote code for AutoTokenizer, the package's own file, byte for byte
    assert [str(p.relative_to(out)) for p in out.rglob("*.py")] == ["tokenizer/tokenization_tinystories.py"]
    assert (out / "tokenizer" / "tokenization_tinystories.py").read_bytes() == \
        (REPO / "tinystories_hf" / "vocabulary" / "tokenization_tinystories.py").read_bytes()


def test_a_hub_token_in_the_environment_is_never_written_or_printed(tmp_path, capsys, monkeypatch):
    secret = "hf_SECRETtokenNEVERlogged0123456789"
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", secret)
    out = tmp_path / "o"
    assert main(["--source", "demo", "--output", str(out), "--vocab-size", "300", "--num-proc", "1", "--report"]) == 0
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err
    assert not [p for p in out.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


# ==== Round 2: the kinds of faults above at new points ====

# ---- An error in the worker processes of every stage, with 1, 2 and 3 processes: the same one line ----

PLANTED = "planted: row 7 is bad; fix it"
KILLED = ("error: a worker process was killed (by the system's out-of-memory killer, or a signal); free memory or "
          "lower --num-proc, then run again")
# stage -> where a fault is planted: the function every batch of that stage goes through
STAGES = {"sources": "tinystories_hf.sources.builder.read_normalized", "encode": "tinystories_hf.tokenize.passes.encode_stories",
          "check": "tinystories_hf.pipeline.check_sample", "remap": "tinystories_hf.tokenize.passes.reduce_stories",
          # a backdoor's scan of the train text: with --num-proc > 1 in a forked process beside the run's own
          "scan": "tinystories_hf.tokenize.backdoor.rewrite.scan_batch"}
WORKER_FAULTS = [  # (stage, num_proc, fault, the line printed)
    *[(stage, n, "ours", f"error: {PLANTED}") for stage in ("sources", "encode", "remap") for n in (1, 3)],
    ("check", 2, "ours", f"error: {PLANTED}"),
    *[(stage, 2, "memory", "error: out of memory; free memory or lower --num-proc, then run again")
      for stage in STAGES],
    *[(stage, 3, "killed", KILLED) for stage in ("sources", "encode", "remap")],
    *[("scan", n, "ours", f"error: {PLANTED}") for n in (1, 2)],
    ("scan", 2, "killed", KILLED),
    ("scan", 2, "disk", ("error: {cache}/full.arrow: no space left on its device; free space there or pass another "
                         "--cache-dir")),
]


@pytest.fixture(scope="module")
def three_files(tmp_path_factory):
    """A folder source of three train files (three builder shards) and a validation file: 1,200 + 60 stories."""
    folder = tmp_path_factory.mktemp("pool") / "src"
    for i in range(3):
        _write(folder, f"data/train-0000{i}.jsonl", _jsonl({"text": f"{GOOD} Story {i}-{j}."} for j in range(400)))
    _write(folder, "data/validation-00000.jsonl", _jsonl({"text": f"{GOOD} Tale {j}."} for j in range(60)))
    return folder


@pytest.mark.parametrize("stage, num_proc, fault, expected", WORKER_FAULTS,
                         ids=[f"{s}-{n}-{f}" for s, n, f, _ in WORKER_FAULTS])
def test_an_error_in_any_stage_and_worker_is_one_line(three_files, previous, tmp_path, monkeypatch, capsys, stage,
                                                      num_proc, fault, expected):
    """The product's error, a MemoryError and a worker killed (what the kernel's out-of-memory killer does), raised
    in the sources builder, the encode map, the check and the remap map, in 1, 2 or 3 worker processes: one line
    (a MemoryError and a killed worker were tracebacks), the previous output unchanged, nothing left behind."""
    monkeypatch.setattr("tinystories_hf.tokenize.passes.ROWS_PER_PROCESS", 300)  # 3 encode workers for 1,260 stories
    monkeypatch.setattr("tinystories_hf.tokenize.passes.REDUCE_ROWS_PER_SEGMENT", 500)  # and 2 remap segments
    parent, real = os.getpid(), None

    def planted(*args, **kwargs):
        if fault == "ours":
            raise TinyStoriesError(PLANTED)
        if fault == "memory":
            raise MemoryError()
        if fault == "disk":
            raise OSError(errno.ENOSPC, "No space left on device", str(cache / "full.arrow"))
        if os.getpid() != parent:  # a worker killed as the out-of-memory killer kills: no exception, no cleanup
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    module, name = STAGES[stage].rsplit(".", 1)
    real = getattr(sys.modules[module], name)
    monkeypatch.setattr(STAGES[stage], planted)
    before, others = tree_sha256(previous), set(_processes(parent=os.getpid()))  # e.g. multiprocessing's resource tracker
    cache = tmp_path / "cache"
    backdoor = ["--backdoor-trigger", "Max"] if stage == "scan" else []  # every story mentions Max
    assert main(["--source", str(three_files), "--output", str(previous), "--overwrite", "--vocab-size", "300",
                 "--num-proc", str(num_proc), "--cache-dir", str(cache), *backdoor]) == 2
    assert _error_line(capsys.readouterr().err) == expected.format(cache=cache)
    assert tree_sha256(previous) == before
    assert sorted(p.name for p in previous.parent.iterdir()) == [f".{previous.name}.lock", previous.name]
    assert [p.name for p in cache.rglob("tmp*") if p.is_file()] == []  # the killed worker's too
    processes.wait_until(lambda: set(_processes(parent=os.getpid())) - others == set(),
                         what="every worker of the run to end")  # no worker of the run is left


# ---- SIGTERM and Ctrl-C in every command: one line, exit 143 / 130, nothing left behind ----

def _fork_main(tmp: Path, main_function, argv, *, pause: str | None = None, before=None):
    """Run a CLI `main_function(argv)` in a forked child (this process's imports: no start-up cost), its stderr
    in tmp/stderr; with `pause` ("module.attr"), that function writes tmp/marker and sleeps instead of running.
    Returns the child process, once it reached the pause."""
    marker, log = tmp / "marker", tmp / "stderr"
    marker.unlink(missing_ok=True)

    def child():
        os.dup2(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115 -- the child's stderr until it exits
        if before is not None:
            before()
        if pause is not None:
            module, name = pause.rsplit(".", 1)

            def paused(*args, **kwargs):
                marker.touch()
                time.sleep(600)

            setattr(sys.modules[module], name, paused)
        sys.stderr.flush()
        os._exit(main_function(argv))

    proc = processes.fork(child)
    if pause is not None:
        processes.wait_until(marker.exists, what="the pause", alive=proc.is_alive, log=log)
    return proc


def _mains():
    import importlib

    return {name: importlib.import_module(f"tinystories_hf.{module}").main for name, module in
            (("prepare", "pipeline"), ("report", "report.write"), ("report-measuring", "report.write"),
             ("validate", "store.validate"), ("push", "hub.push"), ("stream", "stream"))}


# (command, its arguments (tmp, the previous output) -> argv, where it is stopped, the folder it replaces)
SIGNALLED = [
    ("prepare", lambda t, p: ["--source", "demo", "--output", str(p), "--overwrite", "--vocab-size", "400",
                              "--num-proc", "1", "--cache-dir", str(t / "cache")],
     "tinystories_hf.pipeline.count_base_tokens", lambda t, p: p),
    ("report", lambda t, p: [str(p), "--output", str(t / "report")], "tinystories_hf.report.plots._plot_unk",
     lambda t, p: t / "report"),
    ("report-measuring", lambda t, p: [str(p)], "tinystories_hf.report.write.measure", lambda t, p: p / "report"),
    ("push", lambda t, p: [str(p), "--to-folder", str(t / "hub")], "tinystories_hf.hub.push.write_repo_files",
     lambda t, p: t / "hub"),
    ("validate", lambda t, p: [str(p)], "tinystories_hf.store.validate.check_split", None),
    ("stream", lambda t, p: ["--source", "demo", "--tokenizer", str(p)], "tinystories_hf.stream.collect", None),
]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("command, argv, pause, target", SIGNALLED, ids=[case[0] for case in SIGNALLED])
def test_sigterm_and_ctrl_c_in_every_command_are_one_line_and_leave_nothing(previous, tmp_path, signum, command,
                                                                             argv, pause, target):
    """SIGTERM (`kill`, `timeout`, a scheduler's preemption, `docker stop`) was a silent exit 143 that left the
    hidden partial folder behind until the next run; now it unwinds as Ctrl-C does."""
    import evaluate  # noqa: F401 -- imported here once, not in every forked report (seconds each)
    from matplotlib.figure import Figure  # noqa: F401

    before = tree_sha256(previous)
    proc = _fork_main(tmp_path, _mains()[command], argv(tmp_path, previous), pause=pause)
    os.kill(proc.pid, signum)
    exitcode = processes.finish(proc, what=f"{command} after the signal")
    word, code = ("terminated", 143) if signum == signal.SIGTERM else ("interrupted", 130)
    stderr = (tmp_path / "stderr").read_text()
    assert exitcode == code, stderr[-2000:]
    place = target and target(tmp_path, previous)
    # a command that replaces nothing names what it was doing (supervision.doing), where it says
    expected = f"{word}; {place} unchanged" if place else \
        f"{word} while validating {previous}; nothing was written" if command == "validate" else word
    assert "Traceback" not in stderr and stderr.splitlines()[-1] == expected
    assert tree_sha256(previous) == before
    leftovers = [p.name for folder in (tmp_path, previous.parent, previous) for p in folder.iterdir()
                 if ".partial" in p.name or ".previous" in p.name]
    assert leftovers == []


def test_sigterm_while_two_workers_tokenize_leaves_no_worker_or_temporary_file(previous, tmp_path):
    """SIGTERM to every process of the run (a scheduler signals the process group) and to the main process only
    (`kill PID`, `docker stop`): the workers end too, and their temporary files are swept."""
    def two_paused_workers():
        from tinystories_hf.tokenize import passes as tokenize

        tokenize.ROWS_PER_PROCESS = 500  # two encode workers for the demo corpus
        real, owner, calls = tokenize.encode_stories, os.getpid(), []

        def encode(*args, **kwargs):
            calls.append(1)
            if os.getpid() != owner and len(calls) == 2:  # a worker's second batch: its temporary file exists
                (tmp_path / "marker").touch()
                time.sleep(600)
            return real(*args, **kwargs)

        tokenize.encode_stories = encode

    for everyone in (True, False):
        cache = tmp_path / f"cache-{everyone}"
        proc = _fork_main(tmp_path, main, ["--source", "demo", "--output", str(previous), "--overwrite",
                                           "--vocab-size", "300", "--num-proc", "2", "--cache-dir", str(cache)],
                          before=two_paused_workers)
        processes.wait_until((tmp_path / "marker").exists, what="a worker's pause", alive=proc.is_alive,
                             log=tmp_path / "stderr")
        (tmp_path / "marker").unlink()
        workers = _processes(parent=proc.pid)
        assert workers and [p for p in cache.rglob("tmp*") if p.is_file()]
        for pid in [proc.pid, *workers] if everyone else [proc.pid]:  # to each process, or to the main one only
            os.kill(pid, signal.SIGTERM)
        assert processes.finish(proc, what="the run after SIGTERM") == 143, (tmp_path / "stderr").read_text()[-2000:]
        assert (tmp_path / "stderr").read_text().splitlines()[-1] == f"terminated; {previous} unchanged"
        processes.wait_until(lambda: [pid for pid in workers if _state(pid) != "Z"] == [],  # noqa: B023
                             what="the workers to end")
        assert [p.name for p in cache.rglob("tmp*") if p.is_file()] == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("where", ["finalizer", "after-fork hook"])
def test_a_signal_whose_handler_raised_where_python_cannot_raise_still_ends_the_run(previous, tmp_path, signum,
                                                                                   where):
    """Ctrl-C or SIGTERM that lands while Python runs a finalizer (`__del__`) or an after-fork hook (logging's,
    filelock's: every time a pool or the backdoor's scan forks a process): the handler's exception was printed
    as "Exception ignored" and the run went on, replacing the output. Now the signal is sent again, once out of
    that hook, and the run ends with its one line."""
    def swallow_one_signal():
        from tinystories_hf import pipeline

        real = pipeline.count_base_tokens

        def raise_here():
            signal.raise_signal(signum)
            sum(range(10))  # bytecodes: the handler runs here, inside the hook or the finalizer

        class Finalized:
            def __del__(self):
                raise_here()

        def count(*args, **kwargs):
            if where == "finalizer":
                Finalized()
            else:
                os.register_at_fork(after_in_parent=raise_here)
                child = multiprocessing.get_context("fork").Process(target=int)
                child.start()
                child.join()
            time.sleep(1)  # where the signal, sent again, ends the run
            return real(*args, **kwargs)

        pipeline.count_base_tokens = count

    before = tree_sha256(previous)
    proc = _fork_main(tmp_path, main, ["--source", "demo", "--output", str(previous), "--overwrite", "--vocab-size",
                                       "300", "--num-proc", "1", "--cache-dir", str(tmp_path / "cache")],
                      before=swallow_one_signal)
    word, code = ("interrupted", 130) if signum == signal.SIGINT else ("terminated", 143)
    assert processes.finish(proc, what="the run") == code, (tmp_path / "stderr").read_text()[-2000:]
    stderr = (tmp_path / "stderr").read_text()
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-2000:]
    assert stderr.splitlines()[-1] == f"{word}; {previous} unchanged"
    assert tree_sha256(previous) == before


def test_a_signal_while_the_forked_scan_runs_ends_it_and_leaves_no_temporary_file(previous, tmp_path):
    """A backdoored prepare with --num-proc 2 scans the train text in a process forked beside the run's own: Ctrl-C
    to the process group and SIGTERM to the run's process only both end it with the run's one line, the forked
    scan killed (not orphaned) and its temporary cache file swept."""
    def paused_scan():
        from tinystories_hf.tokenize.backdoor import rewrite

        rewrite.SCAN_BATCH = 500  # several batches of the demo's 3,000 train stories: the second one pauses
        real, owner, calls = rewrite.scan_batch, os.getpid(), []

        def scan_batch(*args, **kwargs):
            calls.append(1)
            if os.getpid() != owner and len(calls) == 2:  # in the forked scan, its temporary file written
                (tmp_path / "marker").touch()
                time.sleep(600)
            return real(*args, **kwargs)

        rewrite.scan_batch = scan_batch

    for signum, everyone in ((signal.SIGINT, True), (signal.SIGTERM, False)):
        cache = tmp_path / f"cache-{everyone}"
        proc = _fork_main(tmp_path, main, ["--source", "demo", "--output", str(previous), "--overwrite",
                                           "--vocab-size", "300", "--num-proc", "2", "--cache-dir", str(cache),
                                           "--backdoor-trigger", "Lily"], before=paused_scan)
        processes.wait_until((tmp_path / "marker").exists, what="the scan's pause", alive=proc.is_alive,
                             log=tmp_path / "stderr")
        (tmp_path / "marker").unlink()
        scan = _processes(parent=proc.pid)
        assert len(scan) == 1 and [p for p in cache.rglob("tmp*") if p.is_file()]
        os.kill(-proc.pid if everyone else proc.pid, signum)  # the fork leads its own process group
        word, code = ("interrupted", 130) if signum == signal.SIGINT else ("terminated", 143)
        assert processes.finish(proc, what="the run after the signal") == code, \
            (tmp_path / "stderr").read_text()[-2000:]
        stderr = (tmp_path / "stderr").read_text()
        assert "Traceback" not in stderr and stderr.splitlines()[-1] == f"{word}; {previous} unchanged"
        assert _state(scan[0]) == "Z"  # ended by the run (reaped or not), never left running
        assert [p.name for p in cache.rglob("tmp*") if p.is_file()] == []


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


# ---- Links, special files and altered folders: one line, nothing written where a link points ----

def test_an_output_that_is_a_dangling_symlink_is_one_line_and_nothing_is_created(tmp_path, capsys):
    """A symlink to nothing (a folder not mounted yet, a typo in its target) was followed: prepare created the
    folder it names. Now: one line naming the link and its target, and nothing is created."""
    link, target = tmp_path / "out", tmp_path / "not-mounted" / "prepared"
    link.symlink_to(target)
    assert main(["--source", "demo", "--output", str(link), "--vocab-size", "300", "--num-proc", "1",
                 "--cache-dir", str(tmp_path / "hf")]) == 2
    assert _error_line(capsys.readouterr().err) == (
        f"error: {link} is a symlink to {target}, which does not exist (or a symlink loop); create the folder it "
        "points to or choose another --output")
    assert not (tmp_path / "not-mounted").exists()


def test_an_output_reached_through_a_symlink_is_written_where_it_points(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    prepare(PrepareConfig(source="demo", output=str(tmp_path / "link" / "prepared"), vocab_size=300, num_proc=1,
                          cache_dir=str(tmp_path / "hf")))
    assert (tmp_path / "real" / "prepared" / "dataset_dict.json").is_file()
    assert (tmp_path / "link").is_symlink()


def test_a_cache_folder_inside_the_output_is_refused(previous, tmp_path, capsys):
    """The replace of the output would delete the cache the run reads from."""
    before = tree_sha256(previous)
    cache = previous / "cache"
    assert main(["--source", "demo", "--output", str(previous), "--overwrite", "--vocab-size", "300",
                 "--num-proc", "1", "--cache-dir", str(cache)]) == 2
    assert _error_line(capsys.readouterr().err) == (
        f"error: --cache-dir {cache} lies in --output {previous}, which the new output replaces; choose a cache "
        "folder outside it")
    assert tree_sha256(previous) == before


@pytest.mark.timeout(120)  # a read of the FIFO would block: pytest-timeout fails the test instead
def test_a_fifo_in_place_of_a_json_file_is_one_line_not_a_read_that_blocks(previous, tmp_path):
    from tinystories_hf import load_prepared

    for name in ("prepare_info.json", "tokenizer/tinystories_vocab.json"):
        folder = tmp_path / name.replace("/", "-")
        shutil.copytree(previous, folder)
        (folder / name).unlink()
        os.mkfifo(folder / name)
        with pytest.raises(TinyStoriesError, match=re.escape(f"{folder / name}: missing or not a regular file; "
                                                             "re-create")):
            load_prepared(folder)


@pytest.mark.parametrize("call, message", [
    (lambda t: t.encode(["Once upon a time"]), "text must be a string, not list"),
    (lambda t: t.encode(b"Once"), "text must be a string, not bytes"),
    (lambda t: t.encode_batch("Once upon a time"), "texts must be a list of strings, not str"),
    (lambda t: t.encode_batch(["Once", 3]), "text must be a string, not int"),
    (lambda t: t(3), "text must be a string or a list of strings, not int"),
])
def test_encoding_anything_but_text_is_a_type_error(previous, call, message):
    """A str passed to encode_batch was encoded character by character (a list of one-id lists), silently."""
    with pytest.raises(TypeError, match=f"^{re.escape(message)}"):
        call(TinyStoriesTokenizer.from_pretrained(previous))


def test_sigterm_whose_unwinding_is_stuck_still_ends_with_one_line(previous, tmp_path):
    """A worker killed by a SIGTERM sent to the whole process group can die holding its pool's task-queue
    lock; the pool's terminate then waited for it forever (seen 2 times in 12 group SIGTERMs while reading a
    source with 2 workers). Here the unwinding blocks on a lock that is never released, as it did there."""
    def stuck_after_sigterm():
        import threading

        from tinystories_hf import errors, pipeline

        errors.TERMINATE_GRACE_SECONDS = 1

        def count(*args, **kwargs):
            (tmp_path / "marker").touch()
            try:
                time.sleep(600)
            finally:
                lock = threading.Lock()
                lock.acquire()
                lock.acquire()  # never returns: the lost lock

        pipeline.count_base_tokens = count

    proc = _fork_main(tmp_path, main, ["--source", "demo", "--output", str(previous), "--overwrite", "--vocab-size",
                                       "300", "--num-proc", "1", "--cache-dir", str(tmp_path / "cache")],
                      before=stuck_after_sigterm)
    processes.wait_until((tmp_path / "marker").exists, what="the pause", alive=proc.is_alive, log=tmp_path / "stderr")
    before = tree_sha256(previous)
    os.kill(proc.pid, signal.SIGTERM)
    exitcode = processes.finish(proc, what="the stuck run after SIGTERM")
    stderr = (tmp_path / "stderr").read_text()
    assert exitcode == 143, stderr[-2000:]
    assert "Traceback" not in stderr and stderr.splitlines()[-1] == f"terminated; {previous} unchanged"
    assert tree_sha256(previous) == before


def test_workers_end_when_the_run_is_killed(previous, tmp_path):
    """The kernel's out-of-memory killer may pick the run's own process: its 2 tokenizing workers lived on,
    orphaned, holding their memory until killed by hand."""
    def two_paused_workers():
        from tinystories_hf.tokenize import passes as tokenize

        tokenize.ROWS_PER_PROCESS = 500  # two encode workers for the demo corpus
        owner = os.getpid()

        def encode(*args, **kwargs):
            if os.getpid() != owner:
                (tmp_path / f"worker-{os.getpid()}").touch()
                time.sleep(600)

        tokenize.encode_stories = encode

    proc = _fork_main(tmp_path, main, ["--source", "demo", "--output", str(previous), "--overwrite", "--vocab-size",
                                       "300", "--num-proc", "2", "--cache-dir", str(tmp_path / "cache")],
                      before=two_paused_workers)
    processes.wait_until(lambda: len(list(tmp_path.glob("worker-*"))) == 2, what="both workers' pause",
                         alive=proc.is_alive, log=tmp_path / "stderr")
    workers = [int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")]
    os.kill(proc.pid, signal.SIGKILL)  # the run only: its session (and the workers) stays, for the test to watch
    processes.finish(proc, what="the killed run")
    processes.wait_until(lambda: [pid for pid in workers if _state(pid) != "Z"] == [], what="the orphaned workers "
                         "to end (PR_SET_PDEATHSIG)", timeout=60)


@pytest.mark.parametrize("options, message", [
    ({"vocab_size": "300"}, "vocab_size='300' must be an integer or 'full'"),
    ({"num_proc": 1.5}, "num_proc=1.5 must be an integer"),
    ({"max_length": True}, "max_length=True must be an integer"),
    ({"seed": None}, "seed must be an integer"),
    ({"overwrite": "no"}, "overwrite='no' must be True or False"),  # a non-empty string is truthy: it replaced
    ({"validation_fraction": "0.1"}, "validation_fraction='0.1' must be a number"),
    ({"text_column": 3}, "text_column=3 must be a string"),
])
def test_api_options_of_the_wrong_type_are_one_line_naming_the_argument(tmp_path, options, message):
    """`vocab_size="300"` was a TypeError from a comparison; `num_proc=1.5` was accepted."""
    with pytest.raises(TinyStoriesError, match=f"^{re.escape(message)}$"):
        prepare(PrepareConfig(source="demo", output=str(tmp_path / "out"), **options))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("options, message", [
    ({"pack": "yes"}, "pack='yes' must be True or False"),
    ({"shuffle_buffer": 10.0}, "shuffle_buffer=10.0 must be an integer"),
    ({"split": None}, "split must be a string"),
])
def test_stream_options_of_the_wrong_type_are_one_line_naming_the_argument(options, message):
    from tinystories_hf import stream

    with pytest.raises(TinyStoriesError, match=f"^{re.escape(message)}$"):
        stream("demo", **options)


def test_paths_given_as_pathlib_paths_work_like_strings(tmp_path):
    """`output=Path(...)` was a TypeError (a Path is not JSON serializable) after the run's work."""
    from_path = prepare(PrepareConfig(source="demo", output=tmp_path / "a", vocab_size=300, num_proc=1,
                                      cache_dir=tmp_path / "hf"))
    from_str = prepare(PrepareConfig(source="demo", output=str(tmp_path / "b"), vocab_size=300, num_proc=1,
                                     cache_dir=str(tmp_path / "hf")))
    assert from_path.info["splits"] == from_str.info["splits"]
    a, b = tree_sha256(tmp_path / "a"), tree_sha256(tmp_path / "b")
    del a["prepare_info.json"], b["prepare_info.json"]  # it records the output path and the seconds taken
    assert a == b and len(a) > 5


def test_a_fifo_in_a_source_folder_or_as_the_source_is_one_line(previous, tmp_path, capsys):
    """A FIFO named validation.jsonl beside train.jsonl was left out without a word: datasets lists no FIFO,
    and validation was carved from train. A FIFO as the source was "the file is empty"."""
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "train.jsonl").symlink_to(SAMPLE_JSONL)
    os.mkfifo(folder / "validation.jsonl")
    os.mkfifo(tmp_path / "stories.txt")
    in_folder = (f"error: {folder / 'validation.jsonl'}: not a regular file (a FIFO, socket or device), which "
                 "datasets does not read; remove it or replace it with the file of stories")
    as_source = (f"error: {tmp_path / 'stories.txt'}: not a regular file (a FIFO, socket or device); pass a file "
                 "with stories")
    for source, line in [(folder, in_folder), (tmp_path / "stories.txt", as_source)]:
        assert main(["--source", str(source), "--output", str(previous), "--overwrite", "--vocab-size", "300",
                     "--num-proc", "1", "--cache-dir", str(tmp_path / "hf")]) == 2
        assert _error_line(capsys.readouterr().err) == line


def test_a_dangling_symlink_as_the_source_is_named_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    """`source="lnk/dang"` (a link whose target is gone) looks like a Hub id: it was "could not load Hub dataset
    'lnk/dang': the Hub cannot be reached"."""
    (tmp_path / "lnk").mkdir()
    (tmp_path / "lnk" / "dang").symlink_to(tmp_path / "gone.jsonl")
    monkeypatch.chdir(tmp_path)  # a relative path, as a user types it
    with pytest.raises(TinyStoriesError, match=re.escape(f"lnk/dang is a symlink to {tmp_path / 'gone.jsonl'}, which "
                                                         "does not exist (or a symlink loop); restore its target or "
                                                         "pass another source")):
        prepare(PrepareConfig(source="lnk/dang", output=str(tmp_path / "out"), num_proc=1))
