"""Run every code block of README.md as a new user would, in a fresh copy of the checkout, and check it.

    python scripts/run_readme.py            # in the test environment, offline, about a minute (tests/test_readme.py)
    python scripts/run_readme.py --fresh    # a real fresh venv and real pip installs (needs PyPI, minutes)

Blocks run in order in a temporary copy of the repository (with `../shared` beside it, as for the tests):
`bash` blocks in a shell that keeps what a terminal keeps (`source .venv/bin/activate`, `cd`, `export`),
`python` blocks in one Python session per `##` section of the README (later blocks use what earlier ones
defined; a `pip install` starts new sessions, as a user restarts Python after installing), and blocks of `$ command` lines followed by output: the commands run and their output must match
(a `...` in the README's output stands for any text, as in doctest). An HTML comment right before a block
can say `<!-- readme: skip REASON -->` or `<!-- readme: replace OLD => NEW -->` (visible in the README's
source); the ci-test-command block is .ci/run's own and is not run here.

A block a reader can copy must run as shown on the data it names, so a replace directive may only shorten the
work or swap a stand-in (`check_directive`): OLD and NEW must be the same tokens but for numbers of a name in
WORK_SIZES (steps, iterations, batch sizes, a model's width), made smaller and kept >= 1, and paths or Hub ids
(a token holding a `/`, or the value of a path option). Anything else (a vocabulary size, a max_length, a
source that is not a path, text added or removed) stops the run, naming the directive.

What differs from a user's machine, and only this:
- The Hub is unreachable: the Hub dataset becomes the built-in demo corpus (`roneneldan/TinyStories` ->
  `demo`, and a `tinystories-prepare` without `--source` gets `--source demo`), and the local copies the
  README names (`./TinyStories` in the Hub layout, `TinyStoriesV2-GPT4-train.txt`) are written from the real
  sample in `../shared/data/tinystories-sample/` (5,520 TinyStories stories: enough for a 4,096-piece
  vocabulary, which the demo's few words cannot fill). llama2.c's `data/` is there as its `tinystories.py
  download` leaves it, and must be untouched but for the entries the export owns.
- Without --fresh, `python3 -m venv .venv` makes a venv whose site-packages links to this environment's
  installed packages, and its `pip install` links exactly what pip would install: the distributions the
  requested requirements and extras need (transitively), each checked against its version specifier. So the
  Quickstart really runs without torch, and a block runs only with what the README installed before it.
Finally every file the blocks created must be ignored by the repository's .gitignore.
"""
import argparse
import doctest
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HUB_ID = "roneneldan/TinyStories"
FIXTURES = ["TinyStories", "TinyStoriesV2-GPT4-train.txt", "llama2.c"]
SAMPLE = REPO.parent / "shared" / "data" / "tinystories-sample" / "stories.jsonl"
SAMPLE_VALIDATION = range(2316, 2517)  # the sample's rows from TinyStories' validation file (../shared/README.md)
# llama2.c's data/ as its `tinystories.py download` and an earlier `pretokenize` left it: the user's files
LLAMA2C_OWN = {"llama2.c/data/TinyStories_all_data/data00.json": '[{"story": "Once upon a time."}]',
               "llama2.c/data/tok512/data00.bin": "\0" * 8, "llama2.c/data/tok512.model": "another vocabulary"}
ANNOTATION = re.compile(r"<!--\s*readme:\s*(skip|replace)\s+(.*?)\s*-->", re.DOTALL)
BLOCK_TIMEOUT = 600


class ReadmeError(Exception):
    """A README block that failed: its line in README.md, what ran and what came out."""


# -- reading the README ---------------------------------------------------------------------------------------
def blocks(readme: str) -> list:
    """Fenced blocks in order: dicts with kind (bash, python, output, text), code, line, section, annotations."""
    found, section, lines, i = [], "", readme.split("\n"), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        if line.startswith("```"):
            language, start = line[3:].strip(), i
            i += 1
            body = []
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            before = "\n".join(lines[max(0, start - 6):start])
            before = before[before.rfind("```") + 3:] if "```" in before else before  # this block's comments only
            annotations = ANNOTATION.findall(before)
            if "ci-test-command" in before:
                annotations.append(("skip", "the test command: .ci/run runs it"))
            kind = language or ("output" if body and body[0].startswith("$ ") else "text")
            found.append({"kind": kind, "code": "\n".join(body), "line": start + 1, "section": section,
                          "annotations": annotations})
        i += 1
    return found


def offline(code: str, kind: str) -> str:
    """The one substitution for CI: the Hub dataset becomes the demo corpus."""
    code = code.replace(f'"{HUB_ID}"', '"demo"').replace(f"'{HUB_ID}'", "'demo'")
    if kind != "python":
        code = re.sub(r"(?m)^(\$ )?(tinystories-prepare)(?![^\n#]*--source)(?![^\n#]*--help)",
                      r"\1\2 --source demo", code)
        code = code.replace(f"--source {HUB_ID}", "--source demo")
    return code


# -- what a directive may change ----------------------------------------------------------------------------
# Names whose number is an amount of work: a directive may make it smaller (never 0: a loop of no step would
# hide a failing body). A vocabulary size, a max_length or a sample size is not among them: they change what
# the block computes, and whether it can succeed at all.
WORK_SIZES = {"range", "max_steps", "max_iters", "--max-iters", "--steps", "steps", "batch_size", "--batch-size",
              "per_device_train_batch_size", "gpt_neo_config", "max_new_tokens", "--max-stories", "--repeat",
              "--max-steps", "--eval-batches", "--samples"}
PATH_OPTIONS = {"--output", "--source", "--to-folder", "--data", "--out_dir", "--checkpoint"}
_TOKEN = re.compile(r"(?P<path>[\w.~-]*/(?=[\w.~-]*[A-Za-z])[\w./~-]+)|(?P<number>\d[\d_]*(?![\w.]))|(?P<word>-{0,2}[A-Za-z_][\w-]*)|\S")


def _tokens(text: str) -> list:
    """(kind, text) pairs: path (holds a `/`: a path or a Hub id; or the value of a path option), number, word
    (an option keeps its dashes), or one other character; whitespace separates them."""
    tokens = []
    for m in _TOKEN.finditer(text):
        after_option = bool(tokens) and tokens[-1][1] in PATH_OPTIONS and m.lastgroup == "word"
        tokens.append(("path" if after_option else m.lastgroup or "other", m.group()))
    return tokens


def check_directive(old: str, new: str) -> None:
    """Raise ReadmeError unless `replace OLD => NEW` only shortens the work or swaps a path or Hub id.

    Example:
        >>> check_directive("range(2000)", "range(1)")
        >>> check_directive("vocab_size=4096", "vocab_size=600")
        Traceback (most recent call last):
        ...
        ReadmeError: ...
    """
    said = f"the directive `replace {old} => {new}`"
    before, after = _tokens(old), _tokens(new)
    if not before or [kind for kind, _ in before] != [kind for kind, _ in after]:
        raise ReadmeError(f"{said} adds, removes or reshapes code: a directive may only change a work size (a number "
                          f"of {sorted(WORK_SIZES)}) or a path or Hub id")
    changed = False
    for i, ((kind, a), (_, b)) in enumerate(zip(before, after)):
        if a == b:
            continue
        changed = True
        named = next((text for k, text in reversed(before[:i]) if k == "word"), None)
        if kind == "path":
            continue  # a path or Hub id swapped for its local stand-in
        if kind == "number" and named in WORK_SIZES:
            if not 1 <= int(b.replace("_", "")) <= int(a.replace("_", "")):
                raise ReadmeError(f"{said} makes {named} {b}: a directive may only make the work smaller, never 0")
            continue
        what = f"the number of {named}" if kind == "number" and named else repr(a)
        raise ReadmeError(f"{said} changes {what}, which is neither a work size ({sorted(WORK_SIZES)}) nor a path or "
                          "Hub id: the block must run as shown (change the README itself, or say what it needs)")
    if not changed:
        raise ReadmeError(f"{said} changes nothing")


def annotated(block: dict) -> str:
    code = block["code"]
    for kind, argument in block["annotations"]:
        if kind == "replace":
            if argument.count("=>") != 1:
                raise ReadmeError(f"README.md:{block['line']}: a replace directive is `replace OLD => NEW`")
            old, new = (part.strip() for part in argument.split("=>"))
            check_directive(old, new)
            if old not in code:
                raise ReadmeError(f"README.md:{block['line']}: the annotation replaces {old!r}, which the block "
                                  "does not contain")
            code = code.replace(old, new)
    return offline(code, block["kind"])


# -- the emulated venv (no --fresh) -------------------------------------------------------------------------------
def _requirement_closure(requirements: list) -> dict:
    """{distribution name: Distribution} that pip would install for `requirements` (strings, extras allowed),
    from this environment; raises if one is missing or its version does not fit."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    wanted, found = [Requirement(r) for r in requirements], {}
    while wanted:
        requirement = wanted.pop()
        name = canonicalize_name(requirement.name)
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            raise ReadmeError(f"the README installs {requirement}, which this environment lacks") from None
        if requirement.specifier and not requirement.specifier.contains(dist.version, prereleases=True):
            raise ReadmeError(f"the README installs {requirement}; this environment has {dist.version}")
        extras = set(requirement.extras)
        unknown = extras - set(dist.metadata.get_all("Provides-Extra") or [])
        if unknown:
            raise ReadmeError(f"the README installs {requirement}; {dist.name} {dist.version} here has no extra "
                              f"{sorted(unknown)} (reinstall it)")
        if name in found and extras <= found[name][1]:
            continue
        extras |= found.get(name, (None, set()))[1]
        found[name] = (dist, extras)
        for text in dist.requires or []:
            child = Requirement(text)
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in extras | {""}):
                child.marker = None
                wanted.append(child)
    return {name: dist for name, (dist, _) in found.items()}


def emulate_venv(venv: Path) -> None:
    """A venv with no packages but a `pip` whose `install` links packages of this environment (see the
    module docstring)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    pip.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(__file__)} --emulate-pip "
                   f"{shlex.quote(str(venv))} \"$@\"\n")
    pip.chmod(0o755)


def _site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python*/site-packages"))


def emulate_pip(venv: Path, argv: list) -> int:
    if not argv or argv[0] != "install":
        print(f"run_readme: only `pip install` is emulated, not `pip {' '.join(argv)}`", file=sys.stderr)
        return 2
    requirements, editable = [], False
    for arg in argv[1:]:
        if arg == "-e":
            editable = True
        elif arg.startswith("-"):
            continue  # -q and the like
        elif arg == "." or arg.startswith(".["):
            requirements.append("tinystories-hf" + arg[1:])
        else:
            requirements.append(arg)
    if not editable and any(r.startswith("tinystories-hf") for r in requirements):
        print("run_readme: the checkout is installed with -e (the emulated venv links this one's install)",
              file=sys.stderr)
    real_site = Path(sysconfig.get_paths()["purelib"])
    real_bin = Path(sysconfig.get_paths()["scripts"])
    site, bin_dir = _site_packages(venv), venv / "bin"
    for dist in _requirement_closure(requirements).values():
        for file in dist.files or []:
            parts = Path(file).parts
            if parts[0] == "..":  # a console script: <site>/../../../bin/NAME
                source = (real_site / file).resolve()
                if source.parent == real_bin.resolve() and not (bin_dir / source.name).exists():
                    text = source.read_text(encoding="utf-8", errors="replace")
                    (bin_dir / source.name).write_text(re.sub(r"^#!.*", f"#!{bin_dir / 'python'}", text, count=1))
                    (bin_dir / source.name).chmod(0o755)
                continue
            if not (site / parts[0]).exists() and (real_site / parts[0]).exists():
                (site / parts[0]).symlink_to(real_site / parts[0])
    return 0


# -- running -------------------------------------------------------------------------------------------------------
PYTHON_SESSION = r"""
import sys, traceback
namespace = {"__name__": "__main__"}
while True:
    header = sys.stdin.readline()
    if not header:
        break
    code = sys.stdin.read(int(header))
    try:
        exec(compile(code, "<README block>", "exec"), namespace)
        status = "ok"
    except BaseException:
        status = traceback.format_exc()
    sys.stdout.flush(); sys.stderr.flush()
    print("\0" + __import__("json").dumps(status), flush=True)
"""


class Runner:
    def __init__(self, workdir: Path, *, fresh: bool):
        self.root = workdir
        self.checkout = workdir / "checkout"
        self.fresh = fresh
        self.session_lines = []  # what a terminal keeps between commands
        self.python = {}  # section -> Popen of its Python session
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_DISABLE="1", HF_DATASETS_DISABLE_PROGRESS_BARS="1")
        for name in ("VIRTUAL_ENV", "PYTHONHOME"):
            self.env.pop(name, None)
        # The runner's own Python must not leak into the README's commands: PATH without its bin folder.
        own_bin = str(Path(sys.executable).parent)
        self.env["PATH"] = os.pathsep.join(p for p in self.env["PATH"].split(os.pathsep) if p != own_bin)

    def setup(self) -> None:
        files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
        for name in filter(None, files.decode().split("\0")):
            target = self.checkout / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if (REPO / name).exists():
                shutil.copy2(REPO / name, target)
        (self.root / "shared").symlink_to(REPO.parent / "shared")
        self._fixtures()
        git = ["git", "-c", "user.name=readme", "-c", "user.email=readme@localhost"]
        subprocess.run(git + ["init", "-q"], cwd=self.checkout, check=True)
        (self.checkout / ".git" / "info" / "exclude").write_text("\n".join(f"/{f}" for f in FIXTURES) + "\n")
        subprocess.run(git + ["add", "-A"], cwd=self.checkout, check=True)

    def _fixtures(self) -> None:
        """The local copies the README names, written from the real sample (the Hub is unreachable), and
        llama2.c's data folder with the user's files in it."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [json.loads(line)["text"] for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line]
        stories = {"train": [t for i, t in enumerate(rows) if i not in SAMPLE_VALIDATION],
                   "validation": [rows[i] for i in SAMPLE_VALIDATION]}
        (self.checkout / "TinyStories" / "data").mkdir(parents=True)
        for split, texts in stories.items():
            pq.write_table(pa.table({"text": texts}),
                           self.checkout / "TinyStories" / "data" / f"{split}-00000-of-00001.parquet")
        text = "".join(f"{story}\n<|endoftext|>\n" for story in stories["train"])
        (self.checkout / "TinyStoriesV2-GPT4-train.txt").write_text(text, encoding="utf-8")
        for name, content in LLAMA2C_OWN.items():
            (self.checkout / name).parent.mkdir(parents=True, exist_ok=True)
            (self.checkout / name).write_text(content, encoding="utf-8")

    def users_files_changed(self) -> list:
        """The user's files in llama2.c's data/ that a block changed or removed (the export owns only its own)."""
        return [name for name, content in LLAMA2C_OWN.items() if not (self.checkout / name).is_file()
                or (self.checkout / name).read_text(encoding="utf-8") != content]

    def bash(self, code: str) -> str:
        if not self.fresh:
            code = re.sub(r"python3 -m venv \.venv", f"{shlex.quote(sys.executable)} {shlex.quote(__file__)} "
                          "--emulate-venv .venv", code)
        script = "set -eo pipefail\n" + "\n".join(self.session_lines + [code])
        run = subprocess.run(["bash", "-c", script], cwd=self.checkout, env=self.env, capture_output=True,
                             text=True, timeout=BLOCK_TIMEOUT, check=False)
        if run.returncode:
            raise ReadmeError(f"exit code {run.returncode}\n--- stdout\n{run.stdout[-3000:]}\n--- stderr\n"
                              f"{run.stderr[-3000:]}")
        self.session_lines += [line.strip() for line in code.split("\n") if
                               re.match(r"\s*(source|\.|cd|export)\s", line)]
        if re.search(r"\bpip install\b", code):
            self.close()  # as a user restarts Python after installing: libraries check what is installed at import
        return run.stdout

    def python_block(self, section: str, code: str) -> None:
        if section not in self.python:
            python = self.checkout / ".venv" / "bin" / "python"
            self.python[section] = subprocess.Popen(
                [str(python), "-c", PYTHON_SESSION], cwd=self.checkout, env=self.env, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        session = self.python[section]
        session.stdin.write(f"{len(code)}\n{code}")
        session.stdin.flush()
        output = []
        for line in session.stdout:
            if line.startswith("\0"):
                status = json.loads(line[1:])
                if status != "ok":
                    raise ReadmeError(f"--- output\n{''.join(output)[-2000:]}\n--- error\n{status[-4000:]}")
                return
            output.append(line)
        raise ReadmeError(f"the Python session ended (exit code {session.wait()}):\n{session.stderr.read()[-4000:]}")

    def output_block(self, code: str) -> None:
        """`$ command` lines, each followed by its expected output."""
        pieces = re.split(r"(?m)^\$ (.*)\n?", code)
        for command, expected in zip(pieces[1::2], pieces[2::2]):
            expected, got = expected.rstrip("\n") + "\n", self.bash(command).rstrip("\n") + "\n"
            if not doctest.OutputChecker().check_output(expected, got, doctest.ELLIPSIS):
                raise ReadmeError(f"the output of `{command}` differs from the README's\n--- README\n{expected}"
                                  f"\n--- got\n{got}")

    def close(self) -> None:
        for session in self.python.values():
            session.stdin.close()
            session.wait(timeout=60)
        self.python = {}

    def not_ignored(self) -> list:
        run = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=self.checkout,
                             capture_output=True, text=True, check=True)
        return [line[3:] for line in run.stdout.splitlines() if line.startswith("??")]  # untracked, not ignored


def run(readme_path: Path, *, fresh: bool, keep: bool = False, log=print) -> dict:
    """Run every block; returns {"ran": [...], "skipped": [...]} or raises ReadmeError."""
    readme = readme_path.read_text(encoding="utf-8")
    workdir = Path(tempfile.mkdtemp(prefix="tinystories-readme-"))
    runner = Runner(workdir, fresh=fresh)
    ran, skipped = [], []
    try:
        runner.setup()
        for block in blocks(readme):
            if block["kind"] == "text":
                continue
            where = f"README.md:{block['line']} ({block['kind']}, {block['section']})"
            skips = [reason for kind, reason in block["annotations"] if kind == "skip"]
            if skips:
                skipped.append((where, skips[0]))
                log(f"skip  {where}: {skips[0]}")
                continue
            if block["kind"] not in ("bash", "python", "output"):
                raise ReadmeError(f"{where}: a {block['kind']!r} block; mark it `<!-- readme: skip REASON -->`")
            started = time.perf_counter()
            try:
                code = annotated(block)
                if block["kind"] == "bash":
                    runner.bash(code)
                elif block["kind"] == "python":
                    runner.python_block(block["section"], code)
                else:
                    runner.output_block(code)
            except (ReadmeError, subprocess.TimeoutExpired) as e:
                raise ReadmeError(f"{where} failed:\n{code}\n{e}") from None
            ran.append(where)
            log(f"ok    {where} ({time.perf_counter() - started:.1f} s)")
        runner.close()
        changed = runner.users_files_changed()
        if changed:
            raise ReadmeError(f"the README's commands changed the user's own files in llama2.c's data/: {changed}")
        left = runner.not_ignored()
        if left:
            raise ReadmeError(f"the README's commands created files .gitignore does not ignore: {left[:10]}")
        return {"ran": ran, "skipped": skipped}
    finally:
        for session in runner.python.values():
            session.kill()
        if keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--emulate-venv"]:  # called by the README's `python3 -m venv .venv` (see the docstring)
        emulate_venv(Path(argv[1]).resolve())
        return 0
    if argv[:1] == ["--emulate-pip"]:  # called by the emulated venv's pip
        try:
            return emulate_pip(Path(argv[1]), argv[2:])
        except ReadmeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fresh", action="store_true", help="a real venv and real pip installs (needs PyPI)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary checkout to look at")
    args = parser.parse_args(argv)
    try:
        result = run(REPO / "README.md", fresh=args.fresh, keep=args.keep)
    except ReadmeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{len(result['ran'])} README blocks ran as written, {len(result['skipped'])} skipped with a reason")
    return 0


if __name__ == "__main__":
    sys.exit(main())
