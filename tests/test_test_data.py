"""The tests on a clone made elsewhere (issue 29, item 8): `scripts/fetch_test_data.py` rebuilds the sample from the
four public files it was gathered from, and `TINYSTORIES_TEST_DATA` names the folder the tests then read."""
import hashlib
import importlib.util
import json
import os
import shutil
import sys

import processes
import pytest
from conftest import REPO, SAMPLE_EOT, SAMPLE_JSONL

_spec = importlib.util.spec_from_file_location("fetch_test_data", REPO / "scripts" / "fetch_test_data.py")
fetch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fetch)


@pytest.fixture(scope="module")
def sources(tmp_path_factory, sample_stories):
    """The four files as they are laid out upstream, made from the sample's stories (the counts of SOURCES.md:
    2,316 + 201 + 5 + 2,998): raw `story\\n<|endoftext|>\\n` text, the first one cut inside its next story, and
    the JSON of 3,000 texts holding 2 stories of the first file again."""
    folder = tmp_path_factory.mktemp("upstream")
    first, valid, v2, rest = (sample_stories[:2316], sample_stories[2316:2517], sample_stories[2517:2522],
                              sample_stories[2522:])
    eot = "".join(f"{s}\n<|endoftext|>\n" for s in first) + "Once upon a time, there was a cut-off st"
    texts = rest[:100] + [first[5]] + rest[100:2000] + [" " + first[7] + "\n"] + rest[2000:]
    files = [eot.encode(), "".join(f"{s}\n<|endoftext|>\n" for s in valid).encode(),
             "".join(f"{s}\n<|endoftext|>\n" for s in v2).encode(), json.dumps({"texts": texts}).encode()]
    for data, (_, _, path, _, _) in zip(files, fetch.SOURCES):
        (folder / path.rsplit("/", 1)[-1]).write_bytes(data)
    return folder, files


def test_the_rebuilt_sample_is_the_one_the_tests_measure(sources):
    _, files = sources
    stories = fetch.build(files)
    assert len(stories) == 5520
    built = fetch.outputs(stories)
    assert hashlib.sha256(built["stories.jsonl"]).hexdigest() == fetch.SHA256["stories.jsonl"]
    assert hashlib.sha256(built["stories-eot.txt"]).hexdigest() == fetch.SHA256["stories-eot.txt"]
    assert built == {"stories.jsonl": SAMPLE_JSONL.read_bytes(), "stories-eot.txt": SAMPLE_EOT.read_bytes()}


def test_a_file_that_is_not_the_pinned_one_is_refused(sources, tmp_path, capsys):
    folder, _ = sources
    assert fetch.main([str(tmp_path / "out"), "--from", str(folder)]) == 2  # made here: not the pinned blobs
    assert capsys.readouterr().err.startswith("error: data/tinystories_sample.txt of gusjengis/toy-RNN is not the "
                                              "pinned file (git blob ")
    assert not (tmp_path / "out").exists()


def test_the_tests_read_the_folder_tinystories_test_data_names(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
            "tests/test_layout.py"]
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    missing = processes.run(args, cwd=REPO, env={**env, "TINYSTORIES_TEST_DATA": str(data)}, capture_output=True,
                             text=True, timeout=300)
    assert missing.returncode != 0 and "TINYSTORIES_TEST_DATA" in missing.stderr + missing.stdout
    assert "python scripts/fetch_test_data.py DIR" in missing.stderr + missing.stdout
    for f in (SAMPLE_JSONL, SAMPLE_EOT):
        shutil.copy(f, data / f.name)
    found = processes.run(args, cwd=REPO, env={**env, "TINYSTORIES_TEST_DATA": str(data)}, capture_output=True,
                           text=True, timeout=300)
    assert found.returncode == 0, found.stdout[-2000:] + found.stderr[-2000:]
