"""Shared fixtures. Tests read real stories from ../shared/data (never copied into the repo), keep every cache
inside a per-session temporary folder (removed at the end), and never touch the network: the Hugging Face
libraries run offline, and a guard (netguard/sitecustomize.py, also in every Python the tests start) refuses
and reports any connection to a non-local address, failing the test that tried."""
import importlib.util
import json
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

import processes
import pytest
import tqdm

# tqdm's monitor thread takes tqdm's lock every 10 s; a fork while it holds it leaves the child's copy of the
# lock held forever. Tests fork (their own children, datasets' workers): no thread besides the main one.
tqdm.tqdm.monitor_interval = 0

REPO = Path(__file__).resolve().parents[1]
# The real sample: ../shared/data beside the checkout, or the folder TINYSTORIES_TEST_DATA names (a clone made
# elsewhere: `python scripts/fetch_test_data.py DIR` builds it from the public files it was gathered from).
SAMPLE_DIR = Path(os.environ.get("TINYSTORIES_TEST_DATA") or REPO.parent / "shared" / "data" / "tinystories-sample")
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


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test():
    """Kill every process the test started (tests/processes.py), with its session, when it ends."""
    yield
    processes.kill_all()


def pytest_sessionstart(session):
    if not SAMPLE_JSONL.exists() or not SAMPLE_EOT.exists():
        raise pytest.UsageError(f"{SAMPLE_JSONL} or {SAMPLE_EOT.name} beside it is missing: the tests read the real "
                                "TinyStories sample from ../shared/data beside the checkout, or from the folder "
                                "TINYSTORIES_TEST_DATA names; build it with: python scripts/fetch_test_data.py DIR "
                                "(needs network), then TINYSTORIES_TEST_DATA=DIR")


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


# ---- vocabularies trained on the corpus and full vocabularies (tests/test_train_tokenizer.py, test_vocabularies.py,
# test_export.py): trained on, and prepared from, the real sample with whole stories, as nanoGPT and llama2.c keep them

@pytest.fixture(scope="session")
def trained_bpe(tmp_path_factory):
    from tinystories_hf.vocabulary.train_tokenizer import TrainTokenizerConfig, train_tokenizer

    return train_tokenizer(TrainTokenizerConfig(source=str(SAMPLE_JSONL), output=str(tmp_path_factory.mktemp("bpe") /
                                                                                      "tok"), num_proc=1))


@pytest.fixture(scope="session")
def trained_spm(tmp_path_factory):
    from tinystories_hf.vocabulary.train_tokenizer import TrainTokenizerConfig, train_tokenizer

    return train_tokenizer(TrainTokenizerConfig(source=str(SAMPLE_JSONL), model="sentencepiece", num_proc=1,
                                                output=str(tmp_path_factory.mktemp("spm") / "tok")))


def _prepare_whole(tmp_path_factory, name, tokenizer, **options):
    from tinystories_hf import PrepareConfig, prepare

    out = tmp_path_factory.mktemp("full") / name
    return prepare(PrepareConfig(source=str(SAMPLE_JSONL), output=str(out), tokenizer=str(tokenizer),
                                 vocab_size="full", max_length=None, min_length=0, keep_text=True, num_proc=2,
                                 **options))


@pytest.fixture(scope="session")
def prepared_gpt2_full(tmp_path_factory):
    """The sample with GPT-2's own 50,257 ids, whole stories: nanoGPT's prepare.py encoding."""
    return _prepare_whole(tmp_path_factory, "gpt2", "gpt-neo")


@pytest.fixture(scope="session")
def prepared_spm(tmp_path_factory, trained_spm):
    """The sample with the trained SentencePiece model's own ids, whole stories: llama2.c's encoding."""
    return _prepare_whole(tmp_path_factory, "spm", trained_spm.output / "tok4096.model")


@pytest.fixture(scope="session")
def prepared_bpe(tmp_path_factory, trained_bpe):
    return _prepare_whole(tmp_path_factory, "bpe", trained_bpe.output)


@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount(name, options) mounts a tmpfs at tmp_path/name. The tests run as root (CI does): a mount that fails
    fails the test, it never skips it."""
    points = []

    def mount(name: str, options: str) -> Path:
        point = tmp_path / name
        point.mkdir()
        run = processes.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True,
                             text=True, check=False)
        if run.returncode:
            pytest.fail(f"cannot mount a tmpfs at {point} ({run.stderr.strip()}): the disk-fault tests need root")
        points.append(point)
        return point

    yield mount
    for point in reversed(points):
        processes.run(["umount", "-l", str(point)], check=False)


@pytest.fixture(scope="session")
def tiktoken_gpt2():
    """What nanoGPT's prepare.py uses, `tiktoken.get_encoding("gpt2")`, from the same files by tiktoken's loader."""
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str

    from tinystories_hf.vocabulary.gpt2 import gpt2_bpe_files

    files = gpt2_bpe_files()
    ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=str(files["vocab.bpe"]),
                                            encoder_json_file=str(files["encoder.json"]))
    return tiktoken.Encoding("gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


def word_level_tokenizer(size: int, specials: dict, folder, config: dict | None = None):
    """A WordLevel tokenizer.json of `size` words w0..w{size-1}, split on whitespace, then `specials` added."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

    vocab = {f"w{i}": i for i in range(size)}
    unk = specials.get("unk")
    if unk:
        vocab[unk] = len(vocab)
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.add_special_tokens([AddedToken(t, special=True) for k, t in specials.items() if k != "unk"])
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    if config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder
