"""Where an export lands: the entries it owns inside `--output`, never the folder around them.

The trainers' data folders hold other things: llama2.c's `data/` its downloaded stories and other
vocabularies' `tok{M}/`, nanoGPT's `data/<name>/` a `prepare.py` or notes. An export owns only the entries it
writes there (llama2c: `tok{N}/` and `tok{N}.model`; the others: their `.bin`/`.idx` files, `meta.pkl`,
`export_info.json` and a backdoored folder's `backdoor.json`), recorded in its `export_info.json`, and leaves everything else untouched:

  * one writer per target: the lock `.{anchor}.lock` beside the anchor (`OUT` itself, or `OUT/tok{N}` for
    llama2c), held from the first check to the last rename;
  * the new entries are written to `.{anchor}.partial/`; an `OUT` that did not exist is then that folder
    renamed into place; otherwise the staged folder is renamed to `.{anchor}.commit/` (the commit point) and
    its entries are moved into `OUT` one by one, each previous one set aside first, entries of the previous
    export that the new one lacks (a stale `meta.pkl`) set aside too, and the entry holding the new
    `export_info.json` last. SIGINT and SIGTERM wait for the moves to end;
  * a run killed during the moves leaves `.{anchor}.commit/`, which the next run (under the lock, before
    anything else) finishes. After a kill at any point and one rerun, the owned entries are the previous or
    the new export, whole, and nothing else is left beside them;
  * an entry to write that exists is replaced only with `--overwrite`, and only if it is the previous
    export's (named in its `export_info.json`): anything else is one line, never replaced.
"""
import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from ..errors import TinyStoriesError, flag
from ..supervision import current_run, signals_deferred, writes
from ..utils.atomic import hold_writer_lock, remove_tree, resolve

# What an export may own at OUT's top level; a recorded name outside this is never touched.
OWNABLE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.(bin|idx)|meta\.pkl|export_info\.json|backdoor\.json|"
                     r"tok[0-9]+(\.model)?")
MANIFEST, TRASH = ".entries.json", ".replaced"
RECORD = "export_info.json"


def _beside(path: Path, kind: str) -> Path:
    return path.parent / f".{path.name}.{kind}"


class Placement:
    """The owned entries of one export in `output`; `anchor` names the folder entry that locks and stages
    them (None: `output` itself) and `record` the `export_info.json` that lists them (relative to `output`).

    Example:
        >>> place = Placement("llama2.c/data", anchor="tok4096", record="tok4096/export_info.json")
        >>> place.lock_path.name, place.staging.name
        ('.tok4096.lock', '.tok4096.partial')
    """

    def __init__(self, output, *, anchor: str | None = None, record: str = RECORD, option: str = "output"):
        self.output = output = resolve(output, option)  # through a symlink, into the folder it points to
        self.option = option
        self.anchor = output if anchor is None else output / anchor
        self.record = record
        self.staging, self.commit_dir = _beside(self.anchor, "partial"), _beside(self.anchor, "commit")
        self.lock_path = _beside(self.anchor, "lock")

    # -- before writing ------------------------------------------------------------------------------------

    def check(self, source: Path) -> None:
        """Refuse an output that is a file, lies inside the source (or holds it where the export replaces the
        whole folder), is a mount point the export would have to write beside, or cannot be written to."""
        output, option = self.output, self.option
        if output.exists() and not output.is_dir():
            raise TinyStoriesError(f"{output} is a file, not a folder; choose another {flag(option)}")
        source = Path(source).resolve()
        if output == source or source in output.parents or source == self.anchor or self.anchor in source.parents:
            raise TinyStoriesError(f"{flag(option, str(output))} overlaps the source {source}; write it elsewhere")
        if self.anchor == output and os.path.ismount(output):
            raise TinyStoriesError(f"{output} is a mount point, which the export cannot write beside; write to a "
                                   f"folder inside it ({flag(option, str(output / 'export'))})")
        parent = self.anchor.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise TinyStoriesError(f"cannot write to {output}: {parent} is a file; choose another {flag(option)}")
        try:  # a real probe: os.access says yes to root even on a read-only mount
            tempfile.TemporaryDirectory(prefix=f".{self.anchor.name}.probe-", dir=parent).cleanup()
            problem = None
        except OSError as e:
            problem = e.strerror
        if problem:
            raise TinyStoriesError(f"cannot write to {parent} ({problem}); choose a writable {flag(option)}")
        writes(output, f"choose another {flag(option)}")

    def lock(self) -> None:
        """Hold the writer lock for the rest of the run (the anchor is what an interruption leaves
        unchanged), and finish the moves a killed run left."""
        hold_writer_lock(self.anchor)
        self.roll_forward()

    def recorded(self) -> set:
        """The top-level entries the previous export recorded (its `export_info.json` included): the ones this
        export may replace."""
        try:
            files = json.loads((self.output / self.record).read_text(encoding="utf-8"))["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return set()
        if not isinstance(files, dict):
            return set()
        names = set()
        for name in [*files, self.record]:
            top = str(name).split("/")[0]
            # inside a shared folder (llama2.c's data/) only the anchor's own entries: tok{N}/, tok{N}.model
            if OWNABLE.fullmatch(top) and (self.anchor == self.output or top.split(".")[0] == self.anchor.name):
                names.add(top)
        return names

    def check_entries(self, entries, *, overwrite: bool, same=lambda name: False) -> None:
        """Each entry to write must be absent, identical to what is written (`same(name)`), or the previous
        export's and `overwrite` given; anything else in its place is one line."""
        ours = self.recorded()
        for name in entries:
            path = self.output / name
            if not os.path.lexists(path) or same(name):  # identical bytes: replacing it loses nothing
                continue
            if name not in ours:
                raise TinyStoriesError(f"{path} exists and was not written by tinystories-export; move it away or "
                                       f"choose another {flag(self.option)}")
            if not overwrite:
                raise TinyStoriesError(f"{path} already exists; pass {flag('overwrite', True)} to replace it or "
                                       f"choose another {flag(self.option)}")

    # -- writing -------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def staged(self):
        """Yield the empty staging folder, laid out as the output; it is removed if the block fails (after
        `commit` it is gone)."""
        if os.path.lexists(self.staging):
            remove_tree(self.staging)
        self.staging.mkdir(parents=True)
        try:
            yield self.staging
        finally:
            if os.path.lexists(self.staging):
                shutil.rmtree(self.staging, ignore_errors=True)

    def commit(self, entries: list) -> None:
        """Put the staged entries in place (`entries`: top-level names, the one holding the record last)."""
        unowned = [name for name in entries if not OWNABLE.fullmatch(name)]
        if unowned:  # roll_forward would drop the whole commit as foreign: an export that says it wrote nothing
            raise ValueError(f"the export stages {unowned}, which OWNABLE does not cover; nothing was written")
        run = current_run()
        with signals_deferred():
            if self.anchor == self.output and not os.path.lexists(self.output):
                os.rename(self.staging, self.output)
            else:
                (self.staging / MANIFEST).write_text(json.dumps({"entries": entries}), encoding="utf-8")
                os.rename(self.staging, self.commit_dir)
                self.roll_forward()
            if run is not None:
                run.replaced = True

    def roll_forward(self) -> None:
        """Finish a commit: move the entries of `.{anchor}.commit/` into place (see the module docstring)."""
        if not os.path.lexists(self.commit_dir):
            return
        with signals_deferred():
            try:
                entries = json.loads((self.commit_dir / MANIFEST).read_text(encoding="utf-8"))["entries"]
                if not entries or not all(isinstance(e, str) and OWNABLE.fullmatch(e) for e in entries):
                    raise ValueError(entries)
            except (OSError, ValueError, KeyError, TypeError):
                remove_tree(self.commit_dir)  # not one this package wrote whole: nothing of it is moved
                return
            trash = self.commit_dir / TRASH
            trash.mkdir(exist_ok=True)
            for name in entries[:-1]:
                self._move_in(name, trash)
            for name in sorted(self.recorded() - set(entries)):  # the previous export's, not in this one
                if os.path.lexists(self.output / name):
                    os.rename(self.output / name, trash / name)
            self._move_in(entries[-1], trash)
            remove_tree(self.commit_dir)

    def _move_in(self, name: str, trash: Path) -> None:
        new, target = self.commit_dir / name, self.output / name
        if not os.path.lexists(new):
            return  # moved before a kill
        if os.path.lexists(target):  # the previous one, set aside (removed with the commit folder)
            os.rename(target, trash / name)
        os.rename(new, target)
