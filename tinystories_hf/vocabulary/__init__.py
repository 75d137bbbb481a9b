"""Stage 2 of the data's path: the vocabulary. Takes the base tokenizer (the bundled GPT-Neo BPE, a
`tokenizer.json`, a SentencePiece `.model`) and the stories' base-token counts; gives a `TinyStoriesTokenizer`
(the paper's reduced ids, or the base tokenizer's own) that encodes, decodes and saves itself for AutoTokenizer.

    gpt2.py              the bundled GPT-2 BPE files; does a tokenizer give GPT-2's ids?
    encoders.py          text -> base ids: fastokens, tiktoken, tokenizers
    sentencepiece_base.py  a SentencePiece model as the base tokenizer, and its encoder
    base.py              load_base_tokenizer, its special ids, make_encoder
    counting.py          the vocabulary sample and its token counts
    tokenizer.py         TinyStoriesTokenizer (reduced or full), calling.py its transformers-style calls
    saved.py             tinystories_vocab.json: the saved form, checked when read
    train_tokenizer.py   a BPE or SentencePiece vocabulary trained on the stories
    tokenization_tinystories.py  the AutoTokenizer module copied into saved tokenizer folders
"""
from .base import load_base_tokenizer
from .tokenizer import TinyStoriesTokenizer
from .train_tokenizer import TrainTokenizerConfig, train_tokenizer

__all__ = ["TinyStoriesTokenizer", "TrainTokenizerConfig", "load_base_tokenizer", "train_tokenizer"]
