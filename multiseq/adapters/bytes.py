"""UTF-8 byte tokenizer with LRA's convention: id = byte + 1, 0 = padding."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from multiseq.adapters.base import Adapter, EmbedSpec, as_batch, register_adapter
from multiseq.errors import ConfigError, InputError

TRUNCATION = ("right", "left", "error")
ERRORS = ("strict", "replace", "ignore", "surrogateescape")
PAD_TO = ("longest", "max_length")


@register_adapter("bytes")
class BytesAdapter(Adapter):
    """Text or bytes -> byte ids `(B, L)` and mask `(B, L)`.

    Ids: byte b -> b + 1 (1..256), 0 = padding, 257 = CLS, 258 = EOS (vocabulary 259).

    Args:
        max_length: longest sequence emitted, counting CLS/EOS.
        add_cls: prepend CLS. add_eos: append EOS.
        truncation: `right` (keep the start), `left` (keep the end) or `error` (raise on longer input).
        errors: how `str` inputs that are not encodable (lone surrogates) are handled: `strict` raises
            `InputError` naming the position; `replace` writes `?`; `ignore` drops them; `surrogateescape`
            restores bytes that were decoded with that handler. `bytes` inputs are used as they are, valid UTF-8 or not.
        pad_to: `longest` (pad to the longest in the batch) or `max_length`.
    """

    PAD, CLS, EOS = 0, 257, 258
    VOCAB = 259

    def __init__(
        self,
        max_length: int = 1024,
        add_cls: bool = False,
        add_eos: bool = False,
        truncation: str = "right",
        errors: str = "strict",
        pad_to: str = "longest",
    ) -> None:
        super().__init__(max_length)
        if truncation not in TRUNCATION:
            raise ConfigError(f"truncation must be one of {TRUNCATION}, got {truncation!r}")
        if errors not in ERRORS:
            raise ConfigError(f"errors must be one of {ERRORS}, got {errors!r}")
        if pad_to not in PAD_TO:
            raise ConfigError(f"pad_to must be one of {PAD_TO}, got {pad_to!r}")
        if max_length < int(add_cls) + int(add_eos) + 1:
            raise ConfigError(f"max_length={max_length} leaves no room for text after CLS/EOS")
        self.add_cls, self.add_eos = add_cls, add_eos
        self.truncation, self.errors, self.pad_to = truncation, errors, pad_to

    def embed_spec(self) -> EmbedSpec:
        return EmbedSpec("token", vocab_size=self.VOCAB)

    def encode(self, text: str | bytes) -> list[int]:
        """One text -> list of ids (with CLS/EOS, truncated)."""
        if isinstance(text, str):
            try:
                raw = text.encode("utf-8", errors=self.errors)
            except UnicodeEncodeError as e:
                raise InputError(
                    f"text is not encodable as UTF-8 at position {e.start} ({text[e.start:e.end]!r}: {e.reason}); "
                    f"pass errors='replace', 'ignore' or 'surrogateescape' to the bytes adapter to accept it"
                ) from None
        elif isinstance(text, (bytes, bytearray, memoryview)):
            raw = bytes(text)
        else:
            raise InputError(f"the bytes adapter takes str or bytes, got {type(text).__name__}")
        budget = self.max_length - int(self.add_cls) - int(self.add_eos)
        if len(raw) > budget:
            if self.truncation == "error":
                raise InputError(
                    f"input has {len(raw)} bytes, more than the {budget} allowed (max_length={self.max_length}); "
                    f"use truncation='right' or 'left', or raise max_length"
                )
            raw = raw[:budget] if self.truncation == "right" else raw[len(raw) - budget :]
        ids = [b + 1 for b in raw]
        return ([self.CLS] if self.add_cls else []) + ids + ([self.EOS] if self.add_eos else [])

    def decode(self, ids: Sequence[int] | Tensor, errors: str = "replace") -> str:
        """Ids -> text, skipping padding and special ids."""
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        return bytes(i - 1 for i in ids if 1 <= i <= 256).decode("utf-8", errors=errors)

    def __call__(self, inputs: str | bytes | Sequence[str | bytes]) -> tuple[Tensor, Tensor]:
        """A text or a list of texts -> ids (B, L) int64 and mask (B, L) bool.

        Empty texts give rows with no real token (an all-False mask row); L is at least 1.
        """
        items, _ = as_batch(inputs, (str, bytes, bytearray))
        encoded = [self.encode(t) for t in items]
        L = self.max_length if self.pad_to == "max_length" else max([len(e) for e in encoded] + [1])
        ids = torch.zeros(len(encoded), L, dtype=torch.long)
        for row, e in enumerate(encoded):
            ids[row, : len(e)] = torch.tensor(e, dtype=torch.long)
        mask = torch.zeros(len(encoded), L, dtype=torch.bool)
        for row, e in enumerate(encoded):
            mask[row, : len(e)] = True
        return ids, mask
