"""GPT-Neo configurations of the TinyStories paper's models (Eldan & Li 2023), sized for the reduced vocabulary.

As the paper's released models: 8 layers alternating global and local attention (window 256), 16 heads,
GELU MLP of 4 x hidden, tied embeddings; here with a context of 512 tokens (the stories' max length) and the
vocabulary and separator (EOS) id of the prepared folder's tokenizer.
"""
import os

from transformers import GPTNeoConfig

from ..errors import TinyStoriesError, check_int, flag
from ..utils.extras import require
from ..vocabulary.tokenizer import TinyStoriesTokenizer

# The configs alone would not need torch, but no model can be built from them without it: say so at import.
require("torch", extra="torch", needed_by=__name__)

PAPER_HIDDEN_SIZES = (64, 256, 512)


def _as_tokenizer(tokenizer) -> TinyStoriesTokenizer:
    if isinstance(tokenizer, (str, os.PathLike)):
        return TinyStoriesTokenizer.from_pretrained(tokenizer)
    if not isinstance(tokenizer, TinyStoriesTokenizer):
        raise TinyStoriesError(f"tokenizer= is a {type(tokenizer).__name__}: pass the prepared folder's "
                               "TinyStoriesTokenizer (load_prepared(DIR)[1]) or the folder's path")
    return tokenizer


def gpt_neo_config(hidden_size: int = 64, *, tokenizer, num_layers: int = 8, num_heads: int = 16,
                   window_size: int = 256, context: int = 512) -> GPTNeoConfig:
    """A `transformers.GPTNeoConfig` with the vocabulary of `tokenizer` (object or prepared/tokenizer folder).

    `hidden_size` must be a multiple of `num_heads` (GPT-Neo splits it across its heads); every size is an
    integer >= 1, else `TinyStoriesError`.

    Example:
        >>> config = gpt_neo_config(256, tokenizer="tinystories_prepared")  # doctest: +SKIP
        >>> model = transformers.GPTNeoForCausalLM(config)  # doctest: +SKIP
    """
    for name, value in (("num_layers", num_layers), ("num_heads", num_heads), ("window_size", window_size),
                        ("context", context), ("hidden_size", hidden_size)):
        check_int(name, value, low=1)
    if hidden_size % num_heads:
        raise TinyStoriesError(f"{flag('hidden_size', hidden_size)} is not a multiple of the {num_heads} attention "
                               "heads GPT-Neo splits it across (the paper's sizes: 64, 256, 512)")
    tokenizer = _as_tokenizer(tokenizer)
    # GPT-Neo alternates global and local attention layers; an odd count ends with one more global layer.
    attention_types = [[["global", "local"], num_layers // 2]] + ([[["global"], 1]] if num_layers % 2 else [])
    return GPTNeoConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden_size, num_layers=num_layers,
                        num_heads=num_heads, attention_types=attention_types, window_size=window_size,
                        max_position_embeddings=context, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.separator_id, pad_token_id=tokenizer.separator_id)


def paper_configs(*, tokenizer) -> dict:
    """`{hidden_size: GPTNeoConfig}` for the paper's 8-layer models of hidden size 64, 256 and 512.

    Example:
        >>> configs = paper_configs(tokenizer="tinystories_prepared")  # doctest: +SKIP
        >>> sorted(configs)  # doctest: +SKIP
        [64, 256, 512]
    """
    tokenizer = _as_tokenizer(tokenizer)
    return {hidden: gpt_neo_config(hidden, tokenizer=tokenizer) for hidden in PAPER_HIDDEN_SIZES}


def parameter_count(model) -> int:
    """Distinct parameters of a model (tied embedding and output counted once).

    Example:
        >>> parameter_count(torch.nn.Linear(3, 2))  # doctest: +SKIP
        8
    """
    return sum(p.numel() for p in model.parameters())
