"""The console scripts `tinystories-train` and `tinystories-backdoor-eval`: options parsed from the dataclasses
of `options.py` and checked before torch is imported, so `--help` and a bad option need no `[train]` extra."""
import argparse
import sys

from ..config import CommandParser, add_config_arguments, config_from_args
from ..supervision import cli_errors
from ..utils.extras import require
from .options import BackdoorEvalConfig, TrainConfig
from .options import __doc__ as OPTIONS_DOC


@cli_errors
def train_main(argv=None) -> int:
    """`tinystories-train DIR --output RUN [options]`."""
    parser = CommandParser(prog="tinystories-train", formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Train a GPT-Neo causal LM on a prepared folder's packed train "
                                     "split.\n\n" + OPTIONS_DOC.split("Sources of the recipe defaults:\n")[1])
    parser.add_argument("data", help="prepared folder (tinystories-prepare) with train and validation splits")
    add_config_arguments(parser, TrainConfig, skip=("data",))
    config = config_from_args(parser.parse_args(argv), TrainConfig)
    config.validate()
    require("torch", extra="torch", needed_by="tinystories-train")
    from .trainer import train

    result = train(config)
    if result["rank"] == 0:
            print(f"{result['steps']} steps; validation loss {result['val_loss']:.4f} (perplexity "
              f"{result['val_perplexity']:.2f}); model in {result['model']}")
    return 0


@cli_errors
def backdoor_eval_main(argv=None) -> int:
    """`tinystories-backdoor-eval MODEL --prepared DIR [--clean-model CLEAN] --output OUT`."""
    parser = CommandParser(prog="tinystories-backdoor-eval", description="Sample continuations of a "
                                     "prepared folder's paired trigger/control prompts and compare the lengths of "
                                     "the stories (tokens before EOS) per model and prompt kind.")
    parser.add_argument("model", help=BackdoorEvalConfig.__dataclass_fields__["model"].metadata["help"])
    add_config_arguments(parser, BackdoorEvalConfig, skip=("model",))
    config = config_from_args(parser.parse_args(argv), BackdoorEvalConfig)
    config.validate()
    require("torch", extra="torch", needed_by="tinystories-backdoor-eval")
    from .evaluate import backdoor_eval, summary_table

    result = backdoor_eval(config)
    print(summary_table(result))
    print(f"wrote {result['output']}")
    return 0


if __name__ == "__main__":
    sys.exit(train_main())
