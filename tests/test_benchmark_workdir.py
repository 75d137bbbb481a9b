"""scripts/benchmark.py's working folder: every run says where it is and how big, `--clean` removes it, and
never a folder that no benchmark made."""
import os
import runpy

import pytest
from conftest import REPO

BENCHMARK = runpy.run_path(str(REPO / "scripts" / "benchmark.py"))
WORKDIR = runpy.run_path(str(REPO / "scripts" / "benchmarks" / "workdir.py"))


def _fill(folder):
    """2,000,000 bytes in files, a hard link to one of them (the same bytes) and a link to a file outside."""
    (folder / "corpus-100-100000" / "data").mkdir(parents=True)
    (folder / "corpus-100-100000" / "data" / "train.parquet").write_bytes(bytes(1_500_000))
    (folder / "cache").mkdir()
    (folder / "cache" / "tokens.arrow").write_bytes(bytes(500_000))
    os.link(folder / "cache" / "tokens.arrow", folder / "cache" / "same.arrow")
    outside = folder.parent / "big-elsewhere"
    outside.write_bytes(bytes(3_000_000))
    (folder / "cache" / "link").symlink_to(outside)


def test_a_run_says_where_its_files_are_and_how_big(tmp_path):
    workdir = WORKDIR["claim"](tmp_path / "bench")
    _fill(workdir)
    # 2,000,000 bytes + the marker (0) + the link's own size (the length of its target's path)
    expected = 2_000_000 + len(str(tmp_path / "big-elsewhere"))
    assert WORKDIR["size"](workdir) == expected
    assert WORKDIR["summary"](workdir) == (
        f"benchmark files: {workdir} holds 2.0 MB (the corpora are reused by the next run); remove them with: "
        f"python scripts/benchmark.py --clean --workdir {workdir}")
    assert [WORKDIR["human"](n) for n in (5_900_000_000, 999, 1000, 0)] == ["5.9 GB", "999 bytes", "1.0 kB",
                                                                           "0 bytes"]


def test_clean_removes_the_benchmarks_folder_and_says_what_it_freed(tmp_path, capsys):
    workdir = WORKDIR["claim"](tmp_path / "bench")
    _fill(workdir)
    assert BENCHMARK["main"](["--clean", "--workdir", str(workdir)]) == 0
    assert capsys.readouterr().out == f"removed {workdir} (2.0 MB freed)\n"
    assert not workdir.exists() and (tmp_path / "big-elsewhere").stat().st_size == 3_000_000  # a link's target stays
    assert BENCHMARK["main"](["--clean", "--workdir", str(workdir)]) == 0
    assert capsys.readouterr().out == f"nothing to clean: {workdir} does not exist\n"


@pytest.mark.parametrize("make", ["folder", "link"])
def test_clean_never_removes_a_folder_no_benchmark_made(tmp_path, capsys, make):
    mine = tmp_path / "home"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    target = mine if make == "folder" else tmp_path / "bench-link"
    if make == "link":
        WORKDIR["claim"](mine)
        target.symlink_to(mine)
    assert BENCHMARK["main"](["--clean", "--workdir", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {target} ") and "remove it yourself" in err[0]
    assert (mine / "thesis.tex").read_text() == "years of work"
