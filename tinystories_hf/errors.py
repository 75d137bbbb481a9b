"""One exception type for every problem a user can fix, and how its messages spell options.

Messages name options the way the caller wrote them: `flag("overwrite", True)` reads `--overwrite` when a
CLI entry point is running and `overwrite=True` from the Python API, so the fix a message suggests can be
typed as it is. Turning whatever a run raises into one of these errors (OS faults, out of memory, Ctrl-C,
worker deaths) is `supervision.py`'s job.
"""
import contextvars
import operator

# True while a CLI entry point runs (set by `supervision.cli_errors`): `flag()` then spells command-line flags.
IN_CLI = contextvars.ContextVar("tinystories_hf_in_cli", default=False)

# Moved to supervision.py; importing them from here still works for one release (a DeprecationWarning).
_MOVED_TO_SUPERVISION = {"Run", "Terminated", "api_errors", "cli_errors", "current_run", "has_option", "offers",
                         "signals_deferred", "translate", "writes", "TERMINATE_GRACE_SECONDS"}


class TinyStoriesError(Exception):
    """A user-facing error: its message names the file, row or option at fault and how to fix it.

    Example:
        >>> str(TinyStoriesError("demo.txt: the file is empty; pass a file with stories"))
        'demo.txt: the file is empty; pass a file with stories'
    """


def flag(name: str, value=None, *, api: str | None = None) -> str:
    """An option as the running caller spells it: `--vocab-size 300` / `vocab_size=300` for the CLI / the API.

    `value` True or False gives the switch (`--overwrite`, `--no-keep-text` / `overwrite=True`); None names
    the option alone (`--text-column` / `text_column`). `api` is the API's own spelling where it is not
    `name=value` (another argument, another function).

    Example:
        >>> flag("vocab_size", 300), flag("overwrite", True)
        ('vocab_size=300', 'overwrite=True')
        >>> flag("to_folder", "OUT", api="write_hub_folder(prepared, 'OUT')")
        "write_hub_folder(prepared, 'OUT')"
    """
    if not IN_CLI.get():
        if api is not None:
            return api
        return name if value is None else f"{name}={value!r}"
    dashed = "--" + name.replace("_", "-")
    if value is True or value is None:
        return dashed
    if value is False:
        return "--no-" + name.replace("_", "-")
    return f"{dashed} {value}"


def check_int(name: str, value, *, low: int | None = None, high: int | None = None) -> int:
    """`value` of option `name` as an int, or a one-line `TinyStoriesError` naming it (`flag`): a bool, float,
    string or other non-integer (nothing is rounded: 2.5 is not 2, True is not 1), or a value outside
    `[low, high]`.

    Example:
        >>> check_int("block_size", 512, low=1)
        512
        >>> check_int("block_size", 2.5, low=1)  # doctest: +SKIP
        TinyStoriesError: block_size=2.5 must be an integer
    """
    try:
        number = operator.index(value)  # int and numpy integers; float, str, None raise TypeError
    except TypeError:
        number = None
    if number is None or isinstance(value, bool):
        raise TinyStoriesError(f"{flag(name, value)} must be an integer")
    if low is not None and number < low:
        raise TinyStoriesError(f"{flag(name, value)} must be at least {low}")
    if high is not None and number > high:
        raise TinyStoriesError(f"{flag(name, value)} must be at most {high}")
    return number


def reason(error: BaseException) -> str:
    """The first line of an error's message, or its type: what a one-line error quotes of another."""
    return (str(error).splitlines() or [type(error).__name__])[0] or type(error).__name__


def __getattr__(name):
    if name in _MOVED_TO_SUPERVISION:
        import importlib
        import warnings

        warnings.warn(f"tinystories_hf.errors.{name} moved to tinystories_hf.supervision.{name}; the old name goes "
                      "in the next release", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(".supervision", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
