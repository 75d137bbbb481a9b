"""Shared fixtures. Tests read real stories from ../shared/data (never copied into the repo), keep every cache
inside a per-session temporary folder (removed at the end), and never touch the network: the Hugging Face
libraries run offline, and a guard (netguard/sitecustomize.py, also in every Python the tests start) refuses
and reports any connection to a non-local address, failing the test that tried."""
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

_CACHE = tempfile.mkdtemp(prefix="tinystories-hf-tests-")
_NET_LOG = os.path.join(_CACHE, "network-attempts.log")
_GUARD = str(Path(__file__).resolve().parent / "netguard")
# Set before anything imports huggingface_hub, datasets or transformers: they read these at import time.
os.environ.update({
    "HF_HOME": os.path.join(_CACHE, "hf"),  # no user token, no user cache
    "HF_DATASETS_CACHE": os.path.join(_CACHE, "datasets"),
    "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "TINYSTORIES_NET_LOG": _NET_LOG,
    "PYTHONPATH": os.pathsep.join([_GUARD] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
})
_spec = importlib.util.spec_from_file_location("tinystories_netguard", os.path.join(_GUARD, "sitecustomize.py"))
_netguard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_netguard)  # installs the guard in this process (TINYSTORIES_NET_LOG is set)

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO.parent / "shared" / "data" / "tinystories-sample"
SAMPLE_JSONL = SAMPLE_DIR / "stories.jsonl"
SAMPLE_EOT = SAMPLE_DIR / "stories-eot.txt"


def _network_attempts() -> list:
    try:
        return Path(_NET_LOG).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Fail a test that tried to reach a non-local address (in this process or in one it started)."""
    seen = len(_network_attempts())
    try:
        return (yield)
    finally:
        attempts = _network_attempts()[seen:]
        if attempts:
            pytest.fail(f"the test tried to reach the network ({len(attempts)} attempt(s), first: {attempts[0]}); "
                        "tests must run offline", pytrace=False)


def pytest_sessionstart(session):
    if not SAMPLE_JSONL.exists():
        raise pytest.UsageError(f"{SAMPLE_JSONL} is missing: the tests need ../shared/data beside the checkout")


def pytest_sessionfinish(session, exitstatus):
    attempts = _network_attempts()  # also those of fixtures, outside any test's call phase
    if attempts:
        print(f"\nnetwork attempts during the tests ({len(attempts)}), first: {attempts[0]}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    shutil.rmtree(_CACHE, ignore_errors=True)


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
