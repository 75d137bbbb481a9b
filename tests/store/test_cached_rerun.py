"""A cached rerun hard-links the prepared files kept beside the cache instead of copying them; the output stays
whole whatever happens to the cache afterwards (deleted, cleaned up by datasets, a kept file written in place)."""
import json
import os
import shutil

import datasets
import pytest

from tinystories_hf.pipeline import main
from tinystories_hf.store.folder import PREPARED, file_sha256


@pytest.fixture
def source(tmp_path, sample_stories):
    folder = tmp_path / "source"
    folder.mkdir()
    for name, part in (("train", sample_stories[:600]), ("validation", sample_stories[600:700])):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in part))
    return folder


def _prepare(source, out, cache) -> dict:
    assert main(["--source", str(source), "--output", str(out), "--cache-dir", str(cache), "--num-proc", "1",
                 "--vocab-size", "500", "--overwrite"]) == 0
    return json.loads((out / "prepare_info.json").read_text())


def _data(out) -> dict:
    return {p.relative_to(out).as_posix(): p for p in out.glob("*/data-*.arrow")}


def _ids(out) -> dict:
    return {split: list(ds["input_ids"]) for split, ds in datasets.load_from_disk(str(out)).items()}


def test_rerun_links_kept_files_and_cache_cleanup_never_damages_the_output(source, tmp_path):
    cache = tmp_path / "cache"
    first = _prepare(source, tmp_path / "first", cache)
    kept = sorted(cache.rglob("*.arrow" + PREPARED))
    assert len(kept) == 2  # train and validation
    second = _prepare(source, tmp_path / "second", cache)
    assert second["data_files"] == first["data_files"]
    for name, path in _data(tmp_path / "second").items():
        twin = _data(tmp_path / "first")[name]
        assert os.path.samefile(path, twin) and any(os.path.samefile(path, k) for k in kept)
        assert path.stat().st_mode & 0o222 == 0  # read-only: no one writes it in place by mistake
        assert file_sha256(path) == first["data_files"][name]  # the hash recorded without reading it is right
    expected = _ids(tmp_path / "first")
    # what datasets' cleanup_cache_files removes (every cache-*.arrow), then the whole cache: both outputs keep
    # every byte
    for path in cache.rglob("cache-*.arrow"):
        path.unlink()
    shutil.rmtree(cache)
    for out in ("first", "second"):
        assert _ids(tmp_path / out) == expected
        assert {n: file_sha256(p) for n, p in _data(tmp_path / out).items()} == \
               {n: d for n, d in first["data_files"].items() if n.endswith(".arrow")}
    # an --overwrite of one output leaves the other whole
    _prepare(source, tmp_path / "first", cache)
    assert _ids(tmp_path / "second") == expected


def test_a_kept_file_written_in_place_is_never_linked_again(source, tmp_path):
    cache = tmp_path / "cache"
    first = _prepare(source, tmp_path / "first", cache)
    shutil.copytree(tmp_path / "first", tmp_path / "copy")  # the bytes as prepared, apart from any link
    kept = min(cache.rglob("*.arrow" + PREPARED))
    os.chmod(kept, 0o644)
    with open(kept, "r+b") as f:  # someone writes it in place anyway (it is the first output's file too)
        f.seek(-8, os.SEEK_END)
        f.write(b"\xff" * 8)
    damaged = os.stat(kept).st_ino
    second = _prepare(source, tmp_path / "second", cache)
    assert second["data_files"] == first["data_files"]
    assert damaged not in {p.stat().st_ino for p in _data(tmp_path / "second").values()}
    assert _ids(tmp_path / "second") == _ids(tmp_path / "copy")
    assert {n: file_sha256(p) for n, p in _data(tmp_path / "second").items()} == \
           {n: d for n, d in first["data_files"].items() if n.endswith(".arrow")}
