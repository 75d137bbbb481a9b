"""Blind experiments: the trigger chosen in secret among candidates and written only to a sealed file.

`--backdoor-trigger random:Mia,Sara,Lucy` names the candidates; `choose` picks one with `secrets` (not the run's
seeded generator: a seed recorded in prepare_info.json must not reveal it), and `seal` writes it to
`backdoor.sealed.json`, readable by its owner alone (mode 0600), beside a sha256 of the file's other content.
Nothing else the run writes or prints may name the choice; `unseal` (`tinystories-validate --unseal`) checks
the seal and gives it back when the experiment is over.

The sha256 detects an edited or damaged file, not a forger (anyone who can write the file can recompute it).
The file also holds a random nonce, so the sha256 can be published (in backdoor.json, say, to tie the seal to
its folder) without letting anyone hash each candidate to find the choice.
"""
import hashlib
import json
import os
import secrets
from pathlib import Path

from ...errors import TinyStoriesError, flag
from ...utils.json_files import SHA256, Check, read_json
from .match import check_trigger

SEALED_FILE = "backdoor.sealed.json"
RANDOM_PREFIX = "random:"
SEALED_FORMAT = "tinystories-hf/backdoor-sealed/1"
_SCHEMA = {"format": Check(str, lambda v: v == SEALED_FORMAT, repr(SEALED_FORMAT)), "candidates": [str],
           "trigger": str, "nonce": str, "sha256": SHA256}


def is_blind(trigger) -> bool:
    """Whether `trigger` asks for a blind choice (`random:A,B,...`)."""
    return isinstance(trigger, str) and trigger.startswith(RANDOM_PREFIX)


def parse_candidates(trigger: str) -> list:
    """The candidate names of `random:Mia,Sara,Lucy` (`["Mia", "Sara", "Lucy"]`, in the order given): two or
    more, each a usable trigger (`check_trigger`), none twice; else a one-line TinyStoriesError naming
    `--backdoor-trigger`.

    Example:
        >>> parse_candidates("random:Mia,Sara,Lucy")
        ['Mia', 'Sara', 'Lucy']
    """
    if not is_blind(trigger):
        raise TinyStoriesError(f"{flag('backdoor_trigger', trigger)}: not a blind choice; write "
                               f"{RANDOM_PREFIX}A,B,... (two or more names)")
    names = trigger[len(RANDOM_PREFIX):].split(",")
    for name in names:
        check_trigger(name)
    if len(names) < 2 or len(set(names)) != len(names):
        raise TinyStoriesError(f"{flag('backdoor_trigger', trigger)}: a blind choice needs two or more different "
                               f"names; write {RANDOM_PREFIX}Mia,Sara,Lucy")
    return names


def choose(candidates: list) -> str:
    """One of `candidates`, by the operating system's secure random source (`secrets.choice`)."""
    return secrets.choice(list(candidates))


def _digest(content: dict) -> str:
    """The sha256 (hex) of `content` without its `sha256` key, as canonical JSON (sorted keys, no spaces)."""
    body = {key: value for key, value in content.items() if key != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode("utf-8")).hexdigest()


def seal(folder, candidates: list, *, choice: str | None = None) -> Path:
    """Write `folder/backdoor.sealed.json` (mode 0600) holding `candidates`, the chosen trigger (`choice`, or
    `choose(candidates)`), a random nonce and the sha256 of that content; return its path. The file is
    written under a temporary name and renamed, so it is whole or absent. Raises TinyStoriesError if the file
    exists (a seal is never overwritten: its choice would be lost) or `choice` is not a candidate.

    Example:
        >>> path = seal(tmp_folder, ["Mia", "Sara", "Lucy"])  # doctest: +SKIP
        >>> oct(path.stat().st_mode & 0o777), unseal(path) in ["Mia", "Sara", "Lucy"]  # doctest: +SKIP
        ('0o600', True)
    """
    path = Path(folder) / SEALED_FILE
    candidates = [check_trigger(name) for name in candidates]
    choice = choose(candidates) if choice is None else choice
    if choice not in candidates:
        raise TinyStoriesError(f"seal: {choice!r} is not one of the candidates {candidates}")
    if path.exists():
        raise TinyStoriesError(f"{path}: a sealed choice is already there; seal into a new folder, or unseal "
                               "and remove it first")
    content = {"format": SEALED_FORMAT, "candidates": candidates, "trigger": choice, "nonce": secrets.token_hex(16)}
    content["sha256"] = _digest(content)
    temporary = path.with_name(f".{SEALED_FILE}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o600)  # whatever the umask, the owner alone reads it
            json.dump(content, file, indent=1, ensure_ascii=False)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def unseal(path) -> str:
    """The trigger sealed in `path` (a `backdoor.sealed.json`, or the folder holding one), after checking the
    file against its schema and its sha256 and that the trigger is one of its candidates. Raises a one-line
    TinyStoriesError naming the file otherwise (missing, malformed, edited: "the seal is broken").

    Example:
        >>> unseal("tinystories_backdoored")  # doctest: +SKIP
        'Sara'
    """
    path = Path(path)
    if path.is_dir():
        path = path / SEALED_FILE
    fix = "the sealed choice cannot be trusted; prepare the blind experiment again"
    content = read_json(path, _SCHEMA, fix=fix)
    if _digest(content) != content["sha256"]:
        raise TinyStoriesError(f"{path}: the seal is broken (the content's sha256 is not the recorded "
                               f"{content['sha256'][:12]}...: the file was edited or damaged); {fix}")
    if content["trigger"] not in content["candidates"]:
        raise TinyStoriesError(f"{path}: the sealed trigger is not one of its candidates; {fix}")
    return content["trigger"]
