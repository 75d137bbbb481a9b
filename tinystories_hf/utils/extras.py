"""Optional dependencies and the extras that install them.

Like `datasets`, the package prepares, reports, validates, streams and pushes without torch. The training side
(adapters, collator, models, sampler) needs it and imports it through `require()`, so that without torch the
import stops with one line naming the extra (`pip install "tinystories-hf[torch]"`) instead of a bare
`No module named 'torch'`.
"""
import importlib

from ..errors import TinyStoriesError


class MissingExtraError(TinyStoriesError, ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra that installs it.

    A `ModuleNotFoundError` (so an `ImportError`: what `from tinystories_hf import TinyStoriesDataset` and
    `except ImportError` expect) and a `TinyStoriesError` (so the CLIs print it as one `error:` line).

    Example:
        >>> try:
        ...     require("no_such_module", extra="torch", needed_by="the example")
        ... except ImportError as e:
        ...     print(e)
        the example needs no_such_module, which is not installed: pip install "tinystories-hf[torch]"
    """


def require(module: str, *, extra: str, needed_by: str):
    """Import and return `module`; if it is not installed, raise `MissingExtraError` naming `extra`.

    A module that is installed but fails to import (a broken install) keeps its own error.

    Example:
        >>> require("json", extra="torch", needed_by="the example").dumps([1])
        '[1]'
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or module.split(".")[0] != e.name.split(".")[0]:
            raise  # another module is missing: not this extra's problem
        error = MissingExtraError(f"{needed_by} needs {module}, which is not installed: "
                                  f'pip install "tinystories-hf[{extra}]"')
        error.name = e.name
        raise error from None
