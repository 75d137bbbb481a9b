"""One exception type for every problem a user can fix; the CLIs print it as a single line."""
import functools
import sys


class TinyStoriesError(Exception):
    """A user-facing error: its message names the file, row or option at fault and how to fix it."""


def cli_errors(main):
    """Run a CLI entry point: a `TinyStoriesError` becomes `error: <message>` and exit code 2, no traceback."""

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except TinyStoriesError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper
