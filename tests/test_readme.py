"""README.md as a new user meets it: every code block runs as written (scripts/run_readme.py, on the demo corpus
where a block uses the Hub, in a venv holding exactly what the README installed), example outputs are those
the commands print, the files the examples create are ignored by git, and no path of a machine is quoted."""
import re
import runpy

import pytest
from conftest import REPO

RUNNER = runpy.run_path(str(REPO / "scripts" / "run_readme.py"))
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_quotes_no_absolute_path_of_a_machine():
    found = re.findall(r"(?<![\w.])(?:/(?:work|tmp|home|root|Users|mnt|opt|var|srv|private)/[^\s`'\")]*"
                       r"|[A-Z]:\\\\[^\s`]*)", README)
    assert found == []


def test_every_code_block_is_run_or_says_why_not():
    blocks = [b for b in RUNNER["blocks"](README) if b["kind"] != "text"]
    assert {b["kind"] for b in blocks} <= {"bash", "python", "output"}
    skipped = [b for b in blocks if any(kind == "skip" for kind, _ in b["annotations"])]
    assert all(len(reason) > 20 for b in skipped for kind, reason in b["annotations"] if kind == "skip")
    # skipped: GPUs/NCCL (2), the Hub (push), minGPT, the nanoGPT/llama2.c checkouts and the test data (GitHub)
    assert len(skipped) <= 7 and len(blocks) - len(skipped) >= 12
    quickstart = blocks[0]
    assert quickstart["section"] == "Quickstart" and "torch" not in quickstart["code"]  # the Quickstart needs no torch


@pytest.mark.timeout(900)  # every block of the README, in fresh Python sessions: minutes on a loaded machine
def test_readme_blocks_run_as_written():
    result = RUNNER["run"](REPO / "README.md", fresh=False, log=print)
    assert len(result["ran"]) >= 12


# ---- a directive may only shorten the work or swap a stand-in: never turn a failing block into a passing one ----

@pytest.mark.parametrize("old, new", [
    ("range(2000)", "range(1)"),
    ("batch_size=12", "batch_size=2"),
    ("max_steps=2000", "max_steps=2"),
    ("per_device_train_batch_size=16", "per_device_train_batch_size=2"),
    ("gpt_neo_config(256,", "gpt_neo_config(64,"),
    ("--output nanoGPT/data/tinystories", "--output nanogpt_tinystories"),  # a path for its stand-in
    ("--output llama2.c/data", "--output llama2c_data"),
    ("--output ts", "--output ts_small"),                                      # a path option's plain value
    ('"roneneldan/TinyStories"', '"someone/stand-in"'),                       # a Hub id
])
def test_a_directive_may_shorten_the_work_or_swap_a_path(old, new):
    RUNNER["check_directive"](old, new)


@pytest.mark.parametrize("old, new, named", [
    ("vocab_size=4096", "vocab_size=600", "vocab_size"),                 # the issue's: a block that fails as shown
    ("--vocab-size 4096", "--vocab-size 600", "--vocab-size"),
    ("tok4096.model", "tok600.model", "'tok4096'"),
    ("max_length=512", "max_length=None", "adds, removes or reshapes"),
    ("--max-length 512", "--max-length 1024", "--max-length"),
    ('source="demo"', 'source="./TinyStories"', "adds, removes or reshapes"),
    ("range(2000)", "range(0)", "never 0"),                              # no step: a failing body never runs
    ("batch_size=2", "batch_size=12", "only make the work smaller"),     # bigger is not shorter
    ("loss.backward()", "pass", "adds, removes or reshapes"),
    ("optimizer.step()", "optimizer.step() #", "adds, removes or reshapes"),  # comments the rest of a line out
    ("x = 1", "x = 2", "the number of x"),
    ("range(2000)", "range(2000)", "changes nothing"),
])
def test_a_directive_that_changes_what_a_block_computes_is_refused(old, new, named):
    with pytest.raises(RUNNER["ReadmeError"], match=re.escape(named)):
        RUNNER["check_directive"](old, new)


def test_every_directive_of_the_readme_follows_the_rules():
    directives = [(b["line"], argument) for b in RUNNER["blocks"](README) for kind, argument in b["annotations"]
                  if kind == "replace"]
    for line, argument in directives:
        old, new = (part.strip() for part in argument.split("=>"))
        RUNNER["check_directive"](old, new)  # raises, naming the directive
    # the ones the issue found: nothing may change a vocabulary's size
    assert not [d for d in directives if re.search(r"vocab|tok\d", d[1])]


def test_the_runner_applies_no_directive_that_breaks_the_rules():
    block = {"code": 'train_tokenizer(TrainTokenizerConfig(source="demo", vocab_size=4096))', "line": 218,
             "kind": "python", "annotations": [("replace", "vocab_size=4096 => vocab_size=600")]}
    with pytest.raises(RUNNER["ReadmeError"], match="changes the number of vocab_size"):
        RUNNER["annotated"](block)
    block["annotations"] = [("replace", "range(2000) => range(1)")]
    block["code"] = "for step in range(2000): pass"
    assert RUNNER["annotated"](block) == "for step in range(1): pass"
