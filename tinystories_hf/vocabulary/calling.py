"""The calling convention of a transformers tokenizer, for `TinyStoriesTokenizer`: `tok(texts, padding=True,
return_tensors="pt")` gives a `BatchEncoding` that `model.generate` takes, `batch_decode` reads its output, and
`check_ids` is the one gate every id passes before it is decoded.
"""
import numpy as np

from ..errors import TinyStoriesError, check_int
from ..utils.extras import require


class TransformersCalls:
    """What a transformers tokenizer offers beyond encode/decode, for a class with `encode_batch`, `decode`,
    `id_token`, `vocab_size`, `pad_token_id` and `padding_side` (`TinyStoriesTokenizer`).

    Example:
        >>> batch = tok(["Once upon a time", "The dog"], padding=True, return_tensors="pt")  # doctest: +SKIP
        >>> tok.batch_decode(batch["input_ids"], skip_special_tokens=True)  # doctest: +SKIP
        ['Once upon a time', 'The dog']
    """

    def __call__(self, text, *, padding=False, truncation=None, max_length: int | None = None,
                 return_tensors: str | None = None, return_attention_mask: bool = True,
                 padding_side: str | None = None, add_special_tokens: bool = True):
        """Encode like a transformers tokenizer: a `transformers.BatchEncoding` with `input_ids` (reduced ids, no
        EOS added) and `attention_mask` (1 on tokens, 0 on padding).

        `text`: a string (one sequence) or a list of strings (a batch). `padding`: False, True / "longest",
        or "max_length" (pads with EOS on `padding_side`, default `self.padding_side`). `truncation`: True
        (or "longest_first") cuts at `max_length`; None, the default, does so when `max_length` is given
        without padding, as transformers does. `return_tensors`: None (lists), "pt" (torch) or "np"; a single
        string with tensors gets a batch axis of 1, as in transformers. `add_special_tokens` changes nothing:
        GPT-2's BPE adds no BOS/EOS. Raises `TinyStoriesError` for options it cannot honour (truncation
        without `max_length`, a negative `max_length`, rows of different lengths as one tensor).

        Example:
            >>> tok("Once upon a time")["input_ids"]  # doctest: +SKIP
            [53, 57, 7, 43]
        """
        from transformers import BatchEncoding  # transformers is a dependency; imported only when called

        single = isinstance(text, str)
        if not single and not (isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text)):
            raise TypeError(f"text must be a string or a list of strings, not {type(text).__name__}: {text!r:.40}")
        if max_length is not None:
            max_length = check_int("max_length", max_length, low=0)
        if padding not in (False, True, "longest", "max_length", "do_not_pad"):
            raise TinyStoriesError(f"padding={padding!r}: use False, True, 'longest' or 'max_length'")
        if truncation is None:  # transformers: max_length without padding means truncation
            truncation = max_length is not None and padding in (False, "do_not_pad")
        if truncation not in (True, False, "longest_first", "only_first", "do_not_truncate"):
            raise TinyStoriesError(f"truncation={truncation!r}: use True, False or 'longest_first'")
        truncation = truncation not in (False, "do_not_truncate")
        if (truncation or padding == "max_length") and max_length is None:
            raise TinyStoriesError("truncation=True and padding='max_length' need max_length=")
        if return_tensors not in (None, "pt", "np"):
            raise TinyStoriesError(f"return_tensors={return_tensors!r}: use None (lists), 'pt' or 'np'")
        if return_tensors == "pt":
            require("torch", extra="torch", needed_by="return_tensors='pt'")
        side = padding_side or self.padding_side
        if side not in ("left", "right"):
            raise TinyStoriesError(f"padding_side={side!r}: use 'left' or 'right'")
        ids = self.encode_batch([text] if single else text)
        if truncation:
            ids = [row[:max_length] for row in ids]
        width = {True: max(map(len, ids), default=0), "longest": max(map(len, ids), default=0),
                 "max_length": max_length}.get(padding)
        masks = [[1] * len(row) for row in ids]
        if width is not None:
            pads = [max(0, width - len(row)) for row in ids]
            if side == "right":
                ids = [row + [self.pad_token_id] * n for row, n in zip(ids, pads)]
                masks = [mask + [0] * n for mask, n in zip(masks, pads)]
            else:
                ids = [[self.pad_token_id] * n + row for row, n in zip(ids, pads)]
                masks = [[0] * n + mask for mask, n in zip(masks, pads)]
        if return_tensors is not None and not single and len(set(map(len, ids))) > 1:
            fix = "truncation=True" if padding == "max_length" else "padding=True"
            raise TinyStoriesError(f"sequences of different lengths cannot form one tensor: pass {fix}")
        data = {"input_ids": ids[0] if single else ids}
        if return_attention_mask:
            data["attention_mask"] = masks[0] if single else masks
        return BatchEncoding(data, tensor_type=return_tensors, prepend_batch_axis=single and bool(return_tensors))

    def batch_decode(self, sequences, *, skip_special_tokens: bool = False) -> list:
        """`decode` of each sequence of a batch (lists, a 2-D array or tensor, e.g. `model.generate`'s output).

        Example:
            >>> tok.batch_decode(model.generate(**batch), skip_special_tokens=True)  # doctest: +SKIP
        """
        return [self.decode(row, skip_special_tokens=skip_special_tokens) for row in sequences]

    def check_ids(self, ids) -> np.ndarray:
        """`ids` (an int, or a flat sequence, numpy array or tensor of integers) as an int64 array; anything
        else raises: `TypeError` for a non-integer (3.7, True, "3"), `ValueError` for a nested sequence or an
        id outside [0, vocab_size). Nothing is rounded, flattened or wrapped around."""
        if hasattr(ids, "detach"):  # a torch tensor, on any device
            ids = ids.tolist()
        if isinstance(ids, (str, bytes, bytearray)):  # numpy would take a bytearray's bytes for ids
            raise TypeError(f"token ids must be integers, not {type(ids).__name__} {ids!r:.40}")
        try:
            array = np.asarray(ids)
        except ValueError as e:  # a ragged nested list
            raise ValueError(f"token ids must be a flat sequence of integers ({e})") from None
        if array.ndim > 1:
            raise ValueError(f"token ids must be a flat sequence of integers, not of shape {array.shape}; decode "
                             "each row separately")
        array = array.reshape(-1)
        if array.dtype == object:  # Python ints beyond int64, None, mixed types, or an array of dtype object
            values = array.tolist()
            bad = [i for i in values if not isinstance(i, int) or isinstance(i, bool)]
            if bad:
                raise TypeError(f"token ids must be integers, not {type(bad[0]).__name__} {bad[0]!r:.40}")
            bad = [i for i in values if not 0 <= i < self.vocab_size]
            if bad:
                raise ValueError(f"token id {bad[0]} is out of range [0, {self.vocab_size})")
            array = np.asarray(values, dtype=np.int64)
        if array.size and (array.dtype == bool or not np.issubdtype(array.dtype, np.integer)):
            raise TypeError(f"token ids must be integers, not {array.dtype}: {array[:3].tolist()!r:.40}")
        bad = np.flatnonzero((array < 0) | (array >= self.vocab_size))  # in their own dtype: uint64 never wraps
        if bad.size:
            raise ValueError(f"token id {array[bad[0]]} (position {bad[0]}) is out of range [0, {self.vocab_size})")
        return array.astype(np.int64, copy=False)

    def convert_ids_to_tokens(self, ids):
        """Token strings of ids (a str for a single int, as in transformers), by `id_token`. Raises as
        `check_ids`."""
        single = isinstance(ids, (int, np.integer)) and not isinstance(ids, bool)
        tokens = [self.id_token(i) for i in self.check_ids(ids).tolist()]
        return tokens[0] if single else tokens
