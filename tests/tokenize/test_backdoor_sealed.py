"""Blind experiments (tokenize/backdoor/sealed.py): the sealed file's mode, its seal, a tampered file as one line."""
import hashlib
import json
import os
import stat

import pytest

from tinystories_hf.errors import TinyStoriesError
from tinystories_hf.tokenize.backdoor.sealed import SEALED_FILE, is_blind, parse_candidates, seal, unseal

CANDIDATES = ["Mia", "Sara", "Lucy"]


def test_parse_candidates():
    assert parse_candidates("random:Mia,Sara,Lucy") == CANDIDATES
    assert parse_candidates("random:Big Tom,Sue") == ["Big Tom", "Sue"]
    assert is_blind("random:Mia,Sara") and not is_blind("Mia") and not is_blind(None)


@pytest.mark.parametrize("bad", ["random:", "random:Mia", "random:Mia,Mia", "random:Mia,,Sara", "random:Mia, Sara",
                                 "Mia,Sara"])
def test_bad_candidates_are_one_line(bad):
    with pytest.raises(TinyStoriesError) as caught:
        parse_candidates(bad)
    assert "\n" not in str(caught.value) and "trigger" in str(caught.value)


def test_seal_mode_content_and_unseal(tmp_path):
    old = os.umask(0)  # the widest umask: the file must still be the owner's alone
    try:
        path = seal(tmp_path, CANDIDATES)
    finally:
        os.umask(old)
    assert path == tmp_path / SEALED_FILE and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [SEALED_FILE]  # no temporary file left
    content = json.loads(path.read_text())
    body = {k: v for k, v in content.items() if k != "sha256"}
    assert content["sha256"] == hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert content["candidates"] == CANDIDATES and content["trigger"] in CANDIDATES
    assert unseal(path) == content["trigger"] == unseal(tmp_path)


def test_every_candidate_can_be_chosen_and_the_nonce_hides_it(tmp_path):
    chosen, digests = set(), set()
    for i in range(60):  # misses a candidate with probability 3 * (2/3)**60, about 1e-10
        folder = tmp_path / str(i)
        folder.mkdir()
        chosen.add(unseal(seal(folder, CANDIDATES)))
        digests.add(json.loads((folder / SEALED_FILE).read_text())["sha256"])
    assert chosen == set(CANDIDATES) and len(digests) == 60


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(trigger="Lucy" if c["trigger"] != "Lucy" else "Mia"), "seal is broken"),
    (lambda c: c.update(sha256="0" * 64), "seal is broken"),
    (lambda c: c["candidates"].append("Tom"), "seal is broken"),
    (lambda c: c.pop("nonce"), "nonce"),
    (lambda c: c.update(sha256="xyz"), "sha256"),
])
def test_a_tampered_seal_is_one_line(tmp_path, edit, message):
    path = seal(tmp_path, CANDIDATES)
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content))
    with pytest.raises(TinyStoriesError, match=message) as caught:
        unseal(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_a_forged_trigger_outside_the_candidates_is_refused(tmp_path):
    path = seal(tmp_path, CANDIDATES)
    content = json.loads(path.read_text())
    content["trigger"] = "Tom"
    body = {k: v for k, v in content.items() if k != "sha256"}
    content["sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    path.write_text(json.dumps(content))
    with pytest.raises(TinyStoriesError, match="not one of its candidates"):
        unseal(path)


def test_missing_malformed_or_existing_seal(tmp_path):
    with pytest.raises(TinyStoriesError, match="missing"):
        unseal(tmp_path / SEALED_FILE)
    (tmp_path / SEALED_FILE).write_text("{not json")
    with pytest.raises(TinyStoriesError, match="not valid JSON"):
        unseal(tmp_path)
    with pytest.raises(TinyStoriesError, match="already there"):
        seal(tmp_path, CANDIDATES)
    with pytest.raises(TinyStoriesError, match="not one of the candidates"):
        seal(tmp_path / "x", CANDIDATES, choice="Tom")
