"""One exception type for every problem a user can fix; the CLIs print it as a single line.

Messages name options the way the caller wrote them: `flag("overwrite", True)` reads `--overwrite` when a
CLI entry point is running and `overwrite=True` from the Python API, so the fix a message suggests can be
typed as it is.
"""
import contextvars
import functools
import sys

_IN_CLI = contextvars.ContextVar("tinystories_hf_in_cli", default=False)


class TinyStoriesError(Exception):
    """A user-facing error: its message names the file, row or option at fault and how to fix it."""


def flag(name: str, value=None) -> str:
    """An option as the running caller spells it: `--vocab-size 300` / `vocab_size=300` for the CLI / the API.

    `value` True or False gives the switch (`--overwrite`, `--no-keep-text` / `overwrite=True`); None names
    the option alone (`--text-column` / `text_column`).

    Example:
        >>> flag("vocab_size", 300), flag("overwrite", True)
        ('vocab_size=300', 'overwrite=True')
    """
    if not _IN_CLI.get():
        return name if value is None else f"{name}={value!r}"
    dashed = "--" + name.replace("_", "-")
    if value is True or value is None:
        return dashed
    if value is False:
        return "--no-" + name.replace("_", "-")
    return f"{dashed} {value}"


def cli_errors(main):
    """Run a CLI entry point: a `TinyStoriesError` becomes `error: <message>` and exit code 2, no traceback;
    while it runs, `flag()` spells options as command-line flags."""

    @functools.wraps(main)
    def wrapper(argv=None):
        token = _IN_CLI.set(True)
        try:
            return main(argv)
        except TinyStoriesError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        finally:
            _IN_CLI.reset(token)

    return wrapper
