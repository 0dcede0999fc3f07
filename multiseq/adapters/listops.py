"""LRA ListOps tokeniser: `]` -> `X`, parentheses dropped, whitespace split, fixed 15-token vocabulary."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from multiseq.adapters.base import Adapter, EmbedSpec, as_batch, register_adapter
from multiseq.errors import ConfigError, InputError
from multiseq.tasks.listops import tokens as listops_split

# ids 1..15; LRA's own order came from a Python set (arbitrary), so any fixed order is equivalent.
LISTOPS_TOKENS = ("[MIN", "[MAX", "[MED", "[SM", "X", *map(str, range(10)))
PAD_TO = ("longest", "max_length")
TRUNCATION = ("right", "error")
UNKNOWN = ("oov", "error")


@register_adapter("listops")
class ListOpsAdapter(Adapter):
    """ListOps strings -> token ids `(B, L)` and mask `(B, L)` (True = real token).

    Ids: 0 = pad, 1..15 = `[MIN [MAX [MED [SM X 0..9`, 16 = unknown token (LRA's OOV bucket), 17 = EOS
    (vocabulary 18).

    Args:
        max_length: longest sequence (LRA: 2,000), counting EOS.
        add_eos: append EOS (as S4's pipeline does).
        truncation: `right` keeps the first tokens (LRA), `error` raises on longer input.
        unknown: `oov` maps unknown tokens to id 16 (LRA), `error` raises naming the token.
        pad_to: `longest` in the batch, or `max_length`.
    """

    PAD, UNK, EOS = 0, 16, 17
    VOCAB = 18

    def __init__(
        self,
        max_length: int = 2000,
        add_eos: bool = False,
        truncation: str = "right",
        unknown: str = "oov",
        pad_to: str = "longest",
    ) -> None:
        super().__init__(max_length)
        for name, value, valid in (("truncation", truncation, TRUNCATION), ("unknown", unknown, UNKNOWN),
                                   ("pad_to", pad_to, PAD_TO)):
            if value not in valid:
                raise ConfigError(f"{name} must be one of {valid}, got {value!r}")
        if add_eos and max_length < 2:
            raise ConfigError("max_length=1 leaves no room for tokens after EOS")
        self.add_eos, self.truncation, self.unknown, self.pad_to = add_eos, truncation, unknown, pad_to
        self.vocab = {t: i + 1 for i, t in enumerate(LISTOPS_TOKENS)}

    def embed_spec(self) -> EmbedSpec:
        return EmbedSpec("token", vocab_size=self.VOCAB)

    def encode(self, source: Any) -> list[int]:
        """One ListOps string -> ids (truncated, EOS appended when asked)."""
        if isinstance(source, (bytes, bytearray)):
            source = bytes(source).decode("utf-8", errors="replace")
        if not isinstance(source, str):
            raise InputError(f"the listops adapter takes strings, got {type(source).__name__}")
        ids = []
        for tok in listops_split(source):
            i = self.vocab.get(tok)
            if i is None:
                if self.unknown == "error":
                    raise InputError(f"unknown ListOps token {tok!r}; valid tokens: {' '.join(LISTOPS_TOKENS)}")
                i = self.UNK
            ids.append(i)
        budget = self.max_length - int(self.add_eos)
        if len(ids) > budget:
            if self.truncation == "error":
                raise InputError(f"ListOps input has {len(ids)} tokens, more than {budget} (max_length="
                                 f"{self.max_length}); use truncation='right' or raise max_length")
            ids = ids[:budget]
        return ids + ([self.EOS] if self.add_eos else [])

    def decode(self, ids: Any) -> str:
        """Ids -> space-separated tokens (pad and EOS dropped, unknown as `<unk>`)."""
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        inv = {i: t for t, i in self.vocab.items()}
        return " ".join(inv.get(i, "<unk>") for i in ids if i not in (self.PAD, self.EOS))

    def __call__(self, inputs: Any) -> tuple[Tensor, Tensor]:
        """A string or a list of strings -> ids (B, L) int64 and mask (B, L) bool. L is at least 1."""
        items, _ = as_batch(inputs, (str, bytes, bytearray))
        encoded = [self.encode(s) for s in items]
        L = self.max_length if self.pad_to == "max_length" else max([len(e) for e in encoded] + [1])
        ids = torch.zeros(len(encoded), L, dtype=torch.long)
        mask = torch.zeros(len(encoded), L, dtype=torch.bool)
        for row, e in enumerate(encoded):
            ids[row, : len(e)] = torch.tensor(e, dtype=torch.long)
            mask[row, : len(e)] = True
        return ids, mask
