"""The package imports its public names on first use: a command parses its options (tinystories_hf.config,
tinystories_hf_cli) without loading datasets, pyarrow, tokenizers, numpy or torch, and every public name still
resolves to the defining module's own object."""
import sys

import processes
from conftest import REPO

import tinystories_hf

HEAVY = ("datasets", "pyarrow", "numpy", "tokenizers", "torch")


def test_config_and_the_cli_module_import_no_heavy_library():
    script = ("import sys, tinystories_hf, tinystories_hf.config, tinystories_hf.store.uptodate, tinystories_hf_cli\n"
              f"print([m for m in {HEAVY!r} if m in sys.modules])\n")
    run = processes.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "[]", run.stdout + run.stderr[-2000:]


def test_every_public_name_resolves_to_its_defining_module_object():
    script = ("import importlib, sys, tinystories_hf as t\n"
              "for name in t.__all__:\n"
              "    value = getattr(t, name)\n"
              "    home = t._HOMES.get(name)\n"
              "    module = importlib.import_module(f'tinystories_hf.{home}') if home else t.training\n"
              "    assert value is getattr(module, name), name\n"
              "    assert name in dir(t), name\n"
              "import tinystories_hf.stream\n"  # the submodule of that name leaves the function in place
              "assert callable(t.stream) and t.stream is sys.modules['tinystories_hf.stream'].stream\n"
              "namespace = {}\n"
              "exec('from tinystories_hf import *', namespace)\n"
              "assert set(t.__all__) <= set(namespace), set(t.__all__) - set(namespace)\n"
              "print('ok', t.__version__)\n")
    run = processes.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0 and run.stdout.startswith("ok 0."), run.stdout + run.stderr[-3000:]
    assert set(tinystories_hf.__all__) - set(tinystories_hf.training.__all__) == set(tinystories_hf._HOMES)
