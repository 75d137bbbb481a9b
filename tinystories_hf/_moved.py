"""Import paths of the flat layout (0.1), kept for one release: `import tinystories_hf.vocab` still works and
warns (`DeprecationWarning`) where the code lives now. Nothing else of the package imports from here.

An old module is a forwarding module: each attribute is looked up in its new module(s) (the same objects, so
`isinstance` and identity hold), and `python -m` of an old command module runs the new one. The paths that are
packages now (`store`, `report`, `hub`, `tokenize`) forward their old module-level names the same way, from the
package's `__getattr__` (`forward`).
"""
import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

PACKAGE = __name__.rpartition(".")[0]

# old module -> the modules its names live in now, searched in order
MOVED = {
    "atomic": ("utils.atomic",),
    "json_files": ("utils.json_files",),
    "mapped_pages": ("utils.mapped_pages",),
    "hub_access": ("utils.hub_access",),
    "extras": ("utils.extras",),
    "base_tokenizer": ("vocabulary.base", "vocabulary.encoders", "vocabulary.gpt2"),
    "sentencepiece_base": ("vocabulary.sentencepiece_base",),
    "vocab": ("vocabulary.tokenizer", "vocabulary.saved", "vocabulary.counting"),
    "train_tokenizer": ("vocabulary.train_tokenizer",),
    "tokenization_tinystories": ("vocabulary.tokenization_tinystories",),
    "validate": ("store.validate",),
    "adapters": ("training.adapters",),
    "collator": ("training.collator",),
    "sampler": ("training.sampler",),
    "models": ("training.models",),
    "measurements": ("report.measurements",),
}
# old modules that are packages now -> the modules their old names live in
PACKAGES = {
    "store": ("store.folder", "store.load"),
    "report": ("report.write",),
    "hub": ("hub.push",),
    "tokenize": ("tokenize.passes",),
}


def _stacklevel() -> int:
    """The warning's stack level of the line that imported the old path: the frames of this module counted,
    those of the import machinery not (`warnings` skips them itself)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    return level


def _warn(old: str, new: tuple) -> None:
    warnings.warn(f"{old} moved to {' / '.join(new)}; the old path goes in the next release",
                  DeprecationWarning, stacklevel=_stacklevel())


def _lookup(modules: list, name: str, where: str):
    for module in modules:
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"module {where!r} has no attribute {name!r}")


def forward(package: str):
    """The `__getattr__` of a package that was a module: a name of the old module, from where it lives now."""
    old = package.rpartition(".")[2]
    new = tuple(f"{PACKAGE}.{m}" for m in PACKAGES[old])

    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        modules = [importlib.import_module(m) for m in new]
        value = _lookup(modules, name, package)
        warnings.warn(f"{package}.{name} moved to {next(m.__name__ for m in modules if hasattr(m, name))}.{name}; "
                      "the old path goes in the next release", DeprecationWarning, stacklevel=2)
        return value

    return __getattr__


class _Forwarding(types.ModuleType):
    """An old module: reads and writes of a name go to the module that defines it now, so code that patches
    the old path (`monkeypatch.setattr(tinystories_hf.tokenize, ...)`, a test's stub) still reaches the code."""

    def __getattr__(self, name):
        return _lookup(self.__dict__["_targets"], name, self.__name__)

    def _home(self, name):
        return None if name.startswith("__") else next(
            (m for m in self.__dict__.get("_targets", ()) if hasattr(m, name)), None)

    def __setattr__(self, name, value):
        home = self._home(name)
        if home is None:
            super().__setattr__(name, value)
            return
        self.__dict__.setdefault("_originals", {}).setdefault(name, getattr(home, name))
        setattr(home, name, value)

    def __delattr__(self, name):
        """Undo a patch made through this module (what `monkeypatch.undo()` asks for a name that was not in the
        old module's own `__dict__`): the new module gets its original value back."""
        originals = self.__dict__.get("_originals", {})
        if name in originals:
            setattr(self._home(name), name, originals.pop(name))
        else:
            super().__delattr__(name)

    def __dir__(self):
        return sorted(set().union(*(dir(m) for m in self.__dict__["_targets"])))


class _Loader(importlib.abc.Loader):
    def __init__(self, new: tuple):
        self.new = new

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        _warn(module.__name__, self.new)
        modules = [importlib.import_module(m) for m in self.new]  # an import error surfaces here, as it did
        module.__dict__["_targets"] = modules
        if modules[0].__spec__.submodule_search_locations is not None:  # a package (measurements)
            module.__path__ = list(modules[0].__path__)
        module.__class__ = _Forwarding

    def get_code(self, fullname):
        """`python -m OLD` runs the new module's command (runpy asks the loader for code)."""
        return compile(f"import importlib, sys, warnings\n"
                       f"warnings.warn({fullname + ' moved to ' + self.new[0]!r}, DeprecationWarning)\n"
                       f"sys.exit(importlib.import_module({self.new[0]!r}).main())", f"<{fullname}>", "exec")

    def is_package(self, fullname):
        return False


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        package, _, old = fullname.rpartition(".")
        if package != PACKAGE or old not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, _Loader(tuple(f"{PACKAGE}.{m}" for m in MOVED[old])))


def install() -> None:
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.append(_Finder())
