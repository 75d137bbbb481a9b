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
    # skipped: GPUs/NCCL (2), the Hub (push), minGPT and the nanoGPT/llama2.c checkouts (GitHub)
    assert len(skipped) <= 6 and len(blocks) - len(skipped) >= 12
    quickstart = blocks[0]
    assert quickstart["section"] == "Quickstart" and "torch" not in quickstart["code"]  # the Quickstart needs no torch


@pytest.mark.timeout(900)  # every block of the README, in fresh Python sessions: minutes on a loaded machine
def test_readme_blocks_run_as_written():
    result = RUNNER["run"](REPO / "README.md", fresh=False, log=print)
    assert len(result["ran"]) >= 12
