"""Print the parameter counts of the paper's GPT-Neo models for a prepared folder's vocabulary.

Counts come from instantiated `transformers.GPTNeoForCausalLM` models (tied input/output embedding counted once).

    python scripts/model_sizes.py --data tinystories_prepared
"""
import argparse
import sys
from dataclasses import dataclass, field

from tinystories_hf.config import CommandParser, add_config_arguments, config_from_args
from tinystories_hf.supervision import cli_errors


@dataclass
class ModelSizesConfig:
    """Options of `model_sizes.py`."""

    data: str = field(default="tinystories_prepared",
                      metadata={"help": "prepared folder (or its tokenizer/ folder) giving the vocabulary"})


@cli_errors
def main(argv=None) -> int:
    parser = CommandParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, ModelSizesConfig)
    config = config_from_args(parser.parse_args(argv), ModelSizesConfig)
    from transformers import GPTNeoForCausalLM  # after the models' torch check: one error line without torch

    from tinystories_hf.training.models import paper_configs, parameter_count

    configs = paper_configs(tokenizer=config.data)
    print(f"{'hidden':>6} {'layers':>6} {'heads':>5} {'window':>6} {'context':>7} {'vocab':>6} "
          f"{'parameters':>12} {'non-embedding':>13}")
    for hidden, model_config in configs.items():
        model = GPTNeoForCausalLM(model_config)
        embedding = model.transformer.wte.weight.numel() + model.transformer.wpe.weight.numel()
        total = parameter_count(model)
        print(f"{hidden:>6} {model_config.num_layers:>6} {model_config.num_heads:>5} {model_config.window_size:>6} "
              f"{model_config.max_position_embeddings:>7} {model_config.vocab_size:>6} {total:>12,} "
              f"{total - embedding:>13,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
