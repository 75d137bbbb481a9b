"""JSON files read back from disk (prepare_info.json, the vocabulary, datasets' state, the card's YAML) are
checked before anything trusts them: parsed without letting a deeply nested file exhaust the stack, then
key by key against a small schema, so a damaged or hand-edited file is one line naming the file and the key.

A file read back must be a regular file (a folder, a FIFO or a device in its place is an error, never a
read that blocks or never ends) no larger than such a file can be (`MAX_BYTES`: a crafted huge file is an
error, not minutes of parsing).

A schema is a type (`int`, `str`, ...: `bool` is never an `int` here), a tuple of types, `Check(schema,
test, wanted)`, `{key: schema}` (a dict with these keys; a key ending in `?` may be absent; other keys are
allowed), `[schema]` (a list of such items) or `Each(schema)` (a dict of str keys to such values).

A name read from such a file that becomes a path (a split, a data file, a shard, a tokenizer's base file) is
checked here, by the schemas that read it (`SPLIT`, `PLAIN_FILE`, `FILES`): `split_name`, `plain_file` and
`relative_file` are the one rule every reader of a folder made elsewhere applies, so a crafted
`"../../escape"` is refused when the file is read, before anything joins it to a folder.
"""
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import TinyStoriesError

MAX_BYTES = 16 << 20  # the largest file read back, a 65,536-id vocabulary with its counts, is about 1.3 MB


@dataclass(frozen=True)
class Check:
    """`schema`, and `test(value)` must hold: `wanted` says what the value must be.

    Example:
        >>> problem({"vocab_size": 2}, {"vocab_size": Check(int, lambda v: v >= 3, "an integer >= 3")})
        "key 'vocab_size' is 2, not an integer >= 3"
    """

    schema: object
    test: object
    wanted: str


@dataclass(frozen=True)
class Each:
    """A dict whose keys are strings and whose values all follow `schema`; `key_test` checks each key.

    Example:
        >>> problem({"splits": {"train": {"kept": -1}}}, {"splits": Each({"kept": non_negative()})})
        "key 'splits.train.kept' is -1, not a number >= 0"
    """

    schema: object
    key_test: object = None
    key_wanted: str = ""


@dataclass(frozen=True)
class Nullable:
    """null, or a value that follows `schema`.

    Example:
        >>> problem({"eos_id": None}, {"eos_id": Nullable(non_negative())}) is None
        True
    """

    schema: object


def non_negative(kind=int) -> Check:
    return Check(kind, lambda v: v >= 0, "a number >= 0")


def in_range(low: int, high: int) -> Check:
    """An integer in [low, high)."""
    return Check(int, lambda v: low <= v < high, f"an integer in [{low}, {high})")


SHA256 = Check(str, lambda v: len(v) == 64 and all(c in "0123456789abcdef" for c in v), "a sha256 hex digest")


# datasets' own rule for a split name (`datasets.naming._split_re`, `^\w+(\.\w+)*$`): no separator, no
# leading or trailing dot, so never `..` and never a path.
SPLIT_NAME = re.compile(r"\w+(\.\w+)*")


def split_name(name) -> bool:
    """A split name datasets accepts (`\\w+(\\.\\w+)*`); such a name is one plain path component.

    Example:
        >>> split_name("validation"), split_name("train.v2"), split_name("../../escape"), split_name(".hidden")
        (True, True, False, False)
    """
    return isinstance(name, str) and SPLIT_NAME.fullmatch(name) is not None


def plain_file(name) -> bool:
    """One file name inside a folder: not empty, no separator (`/`, `\\`), not `.` or `..`, no NUL.

    Example:
        >>> plain_file("data-00000-of-00001.arrow"), plain_file("../x.arrow"), plain_file("..")
        (True, False, False)
    """
    return (isinstance(name, str) and name not in ("", ".", "..") and not {"/", "\\", "\0"} & set(name))


def relative_file(name: str) -> bool:
    """A relative path that stays inside the folder (every part a `plain_file`, not absolute): names read
    from a file are joined to the folder they describe.

    Example:
        >>> relative_file("train/data-00000-of-00001.arrow"), relative_file("train/../../x")
        (True, False)
    """
    return isinstance(name, str) and bool(name) and not PurePosixPath(name).is_absolute() and all(
        plain_file(part) for part in name.split("/"))


SPLIT_WANTED = "a split name (letters, digits, '_', inner '.': datasets' rule), never a path"


def _type_name(kind) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list",
             dict: "an object", type(None): "null"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _is(value, kind) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False
    if float in kinds and isinstance(value, int):
        return True
    return isinstance(value, kinds)


def problem(value, schema, where: str = "") -> str | None:
    """What is wrong with `value` against `schema` (a phrase naming the key), or None.

    Example:
        >>> problem({"config": {"min_length": "10"}}, {"config": {"min_length": int}})
        "key 'config.min_length' is a string, not an integer"
    """
    name = f"key '{where}'" if where else "the file"
    if isinstance(schema, Nullable):
        return None if value is None else problem(value, schema.schema, where)
    if isinstance(schema, Check):
        found = problem(value, schema.schema, where)
        if found:
            return found
        return None if schema.test(value) else f"{name} is {value!r:.40}, not {schema.wanted}"
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return f"{name} is {_type_name(type(value))}, not an object"
        for key, sub in schema.items():
            optional, key = key.endswith("?"), key.rstrip("?")
            if key not in value:
                if optional:
                    continue
                return f"key '{where + '.' if where else ''}{key}' is missing"
            found = problem(value[key], sub, f"{where}.{key}" if where else key)
            if found:
                return found
        return None
    if isinstance(schema, list):
        if not isinstance(value, list):
            return f"{name} is {_type_name(type(value))}, not a list"
        for i, item in enumerate(value):
            found = problem(item, schema[0], f"{where}[{i}]")
            if found:
                return found
        return None
    if isinstance(schema, Each):
        if not isinstance(value, dict):
            return f"{name} is {_type_name(type(value))}, not an object"
        for key, item in value.items():
            if schema.key_test is not None and not schema.key_test(key):
                return f"{name} has the key {key!r:.60}, not {schema.key_wanted}"
            found = problem(item, schema.schema, f"{where}.{key}" if where else key)
            if found:
                return found
        return None
    if not _is(value, schema):
        return f"{name} is {_type_name(type(value))}, not {_type_name(schema)}"
    return None


def parse(text: str, where, fix: str):
    """`json.loads(text)`; a malformed or too deeply nested text is a one-line error naming `where`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        reason = str(e)
    except RecursionError:  # json recurses once per nesting level: a crafted file exhausts the stack
        reason = "nested too deeply"
    except ValueError:  # Python refuses integers of more than 4,300 digits (int_max_str_digits)
        reason = "a number too long to read"
    raise TinyStoriesError(f"{where}: not valid JSON ({reason}); {fix}")


def read_text(path, *, fix: str, what: str = "JSON", limit: int = MAX_BYTES) -> str:
    """The UTF-8 text of a small file read back; one line naming it if it is no regular file, is larger than
    `limit` bytes or is not UTF-8 (`what` names the format it should be in)."""
    path = Path(path)
    if not path.is_file():  # a folder, a FIFO (a read would block), a device (/dev/zero never ends), nothing
        raise TinyStoriesError(f"{path}: missing or not a regular file; {fix}")
    size = path.stat().st_size
    if size > limit:
        raise TinyStoriesError(f"{path}: {size:,} bytes, more than such a file can hold ({limit:,}); {fix}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise TinyStoriesError(f"{path}: not valid {what} (not UTF-8 at byte {e.start}); {fix}") from None


def read_json(path, schema, *, fix: str):
    """Parse the JSON file `path` and check it against `schema`; raise one line naming the file, the key
    and `fix` (how to get a good file back)."""
    path = Path(path)
    data = parse(read_text(path, fix=fix), path, fix)
    check(data, schema, path, fix=fix)
    return data


def check(data, schema, where, *, fix: str) -> None:
    """Raise a one-line `TinyStoriesError` if `data` does not follow `schema`."""
    found = problem(data, schema)
    if found:
        raise TinyStoriesError(f"{where}: {found}; {fix}")
