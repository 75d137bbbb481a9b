"""What a command printed: the one `error:` line a failure ends with, after any progress bars."""
import re

# a tqdm bar's state as the commands print it on stderr ("validate: hashing files:  40%|####  | 1.2M/3M ...")
_PROGRESS = re.compile(r"^[\w .'/-]+: .*\d+%\|")


def one_error_line(err: str) -> str:
    """The failure's one line: the last of `err`, the only `error:` line; every other line a progress bar's
    (tqdm separates its updates with `\\r`), never a traceback."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in err, err
    assert all(_PROGRESS.match(line) for line in lines[:-1]), err
    return errors[0]
