"""Shared fixtures. Tests read real stories from ../shared/data (never copied into the repo) and keep every
datasets cache inside a per-session temporary folder."""
import os
import tempfile
from pathlib import Path

_CACHE = tempfile.mkdtemp(prefix="tinystories-hf-tests-")
os.environ["HF_DATASETS_CACHE"] = os.path.join(_CACHE, "datasets")

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO.parent / "shared" / "data" / "tinystories-sample"
SAMPLE_JSONL = SAMPLE_DIR / "stories.jsonl"
SAMPLE_EOT = SAMPLE_DIR / "stories-eot.txt"


def pytest_sessionstart(session):
    if not SAMPLE_JSONL.exists():
        raise pytest.UsageError(f"{SAMPLE_JSONL} is missing: the tests need ../shared/data beside the checkout")


@pytest.fixture(scope="session")
def sample_stories():
    import json

    return [json.loads(line)["text"] for line in SAMPLE_JSONL.open(encoding="utf-8")]


@pytest.fixture(scope="session")
def prepared_sample(tmp_path_factory):
    """The real sample prepared with defaults (text kept to compare against): a PrepareResult."""
    from tinystories_hf import PrepareConfig, prepare

    out = tmp_path_factory.mktemp("prepared") / "sample"
    return prepare(PrepareConfig(source=str(SAMPLE_JSONL), output=str(out), keep_text=True, num_proc=2))


@pytest.fixture(scope="session")
def prepared_demo(tmp_path_factory):
    from tinystories_hf import PrepareConfig, prepare

    out = tmp_path_factory.mktemp("prepared") / "demo"
    return prepare(PrepareConfig(source="demo", output=str(out), vocab_size=500, num_proc=1))
