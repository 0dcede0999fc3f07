"""Kernel-feature attention, linear in length: Linear Transformer (`linear`), Performer (`performer`) and
kernelized attention with a learned spectral distribution (`kernelized`).

All three compute `out_i = sum_j phi(q_i).phi(k_j) v_j / sum_j phi(q_i).phi(k_j)` with a non-negative feature map
phi, over real keys j (and j <= i when causal), without the L x L matrix: bidirectional by the associativity
`phi(Q) (phi(K)^T V)`, causal in chunks (exact attention inside a chunk, a running `phi(K)^T V` state across).

* `linear` (Katharopoulos et al., 2020): phi(x) = elu(x) + 1.
* `performer` (Choromanski et al., 2021, FAVOR+): positive random features of the softmax kernel,
  phi(x) = exp(W x - |x|^2 / 2) / sqrt(m) on x scaled by d^(-1/4), W with orthogonal Gaussian rows; redrawn every
  `redraw_interval` training steps from a counter-derived seed, so resumed runs draw the same features.
* `kernelized`: the same positive features with the frequency matrix W learned (a learned spectral distribution);
  `learn_spectrum=False` keeps W a fixed Gaussian draw (Gaussian random features of the softmax kernel).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from multiseq.blocks.attention import MultiHeadBlock
from multiseq.blocks.registry import register_block


def feature_attention_ref(
    qf: Tensor, kf: Tensor, v: Tensor, causal: bool = False, key_padding_mask: Tensor | None = None, eps: float = 1e-30
) -> Tensor:
    """Dense reference: `A = qf kf^T` masked, `out = A v / A.sum(-1)`. qf, kf: (B, H, L, m); v: (B, H, L, d)."""
    A = torch.einsum("bhim,bhjm->bhij", qf, kf)
    L = qf.shape[2]
    if causal:
        A = A * torch.ones(L, L, dtype=torch.bool, device=A.device).tril()
    if key_padding_mask is not None:
        A = A * key_padding_mask[:, None, None, :]
    return torch.einsum("bhij,bhjd->bhid", A, v) / A.sum(-1, keepdim=True).clamp_min(eps)


def feature_attention(
    qf: Tensor,
    kf: Tensor,
    v: Tensor,
    causal: bool = False,
    key_padding_mask: Tensor | None = None,
    chunk: int = 64,
    eps: float = 1e-30,
) -> Tensor:
    """Linear-time attention with non-negative features.

    Args:
        qf, kf: (B, H, L, m) non-negative query / key features.
        v: (B, H, L, d).
        causal: j <= i only (computed chunk by chunk, exact).
        key_padding_mask: (B, L) bool, True = real.
        chunk: chunk length of the causal computation.

    Returns:
        (B, H, L, d); rows that see no real key are zero.
    """
    if key_padding_mask is not None:
        kf = kf * key_padding_mask[:, None, :, None].to(kf.dtype)
    if not causal:
        kv = torch.einsum("bhlm,bhld->bhmd", kf, v)
        z = kf.sum(2)  # (B, H, m)
        num = torch.einsum("bhlm,bhmd->bhld", qf, kv)
        den = torch.einsum("bhlm,bhm->bhl", qf, z)
        return num / den[..., None].clamp_min(eps)
    B, H, L, m = qf.shape
    pad = (-L) % chunk
    qc, kc, vc = (rearrange(F.pad(t, (0, 0, 0, pad)), "b h (n c) e -> b h n c e", c=chunk) for t in (qf, kf, v))
    kv = torch.einsum("bhncm,bhncd->bhnmd", kc, vc)
    kv_prev = torch.cumsum(kv, dim=2) - kv  # state of the chunks strictly before, (B, H, n, m, d)
    z_prev = torch.cumsum(kc.sum(3), dim=2) - kc.sum(3)  # (B, H, n, m)
    tri = torch.ones(chunk, chunk, dtype=torch.bool, device=qf.device).tril()
    A = torch.einsum("bhncm,bhnkm->bhnck", qc, kc) * tri  # (B, H, n, c, c)
    num = torch.einsum("bhnck,bhnkd->bhncd", A, vc) + torch.einsum("bhncm,bhnmd->bhncd", qc, kv_prev)
    den = A.sum(-1) + torch.einsum("bhncm,bhnm->bhnc", qc, z_prev)
    out = num / den[..., None].clamp_min(eps)
    return rearrange(out, "b h n c d -> b h (n c) d")[:, :, :L]


def positive_random_features(
    x: Tensor, W: Tensor, is_query: bool, key_padding_mask: Tensor | None = None, causal: bool = False
) -> Tensor:
    """FAVOR+ features of the softmax kernel. x: (B, H, L, d) already scaled by d^(-1/4); W: (m, d) -> (B, H, L, m).

    A stabiliser is subtracted from the exponent, which cancels in the attention ratio: per row for queries; for
    keys, the maximum over real keys (bidirectional; 0 for a row without real keys) or, when causal, the data-independent bound
    `max_m |w_m|^2 / 2` of `w.x - |x|^2 / 2`, so that no key's features depend on later keys. Padded keys
    (`key_padding_mask` False) get zero features, so an all-padding row attends to nothing and its output is zero.
    """
    proj = torch.einsum("bhld,md->bhlm", x, W.to(x.dtype))
    logits = proj - x.pow(2).sum(-1, keepdim=True) / 2
    if not is_query and key_padding_mask is not None:
        # Padded keys get exactly zero features (exp(-inf)): never inf * 0 = NaN, whatever values sit there.
        logits = logits.masked_fill(~key_padding_mask[:, None, :, None], float("-inf"))
    if is_query:
        stab = logits.amax(-1, keepdim=True)
    elif causal:
        stab = W.pow(2).sum(-1).amax().to(x.dtype) / 2
    else:
        stab = logits.amax(dim=(-2, -1), keepdim=True)
        # A row with no real key (all padding) has stab -inf; any finite value works there (all features are 0).
        stab = torch.where(torch.isfinite(stab), stab, torch.zeros_like(stab))
    return torch.exp(logits - stab.detach()) / math.sqrt(W.shape[0])


def orthogonal_gaussian(m: int, d: int, generator: torch.Generator | None = None) -> Tensor:
    """(m, d) random matrix with blocks of orthogonal rows whose norms follow the chi distribution of a Gaussian."""
    blocks = []
    for _ in range(math.ceil(m / d)):
        q, _ = torch.linalg.qr(torch.randn(d, d, generator=generator))
        blocks.append(q.T)
    W = torch.cat(blocks)[:m]
    norms = torch.randn(m, d, generator=generator).norm(dim=1, keepdim=True)
    return W * norms


class _FeatureAttention(MultiHeadBlock):
    def __init__(self, dim: int, *, chunk: int = 64, **kwargs: Any) -> None:
        super().__init__(dim, **kwargs)
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.chunk = chunk
        self.head_dim = dim // self.heads

    def features(self, q: Tensor, k: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        qf, kf = self.features(q.float(), k.float(), mask)
        out = feature_attention(qf, kf, v.float(), self.causal, mask, self.chunk)
        return out.to(v.dtype)


@register_block("linear")
class LinearAttention(_FeatureAttention):
    """Linear Transformer: phi(x) = elu(x) + 1."""

    def features(self, q: Tensor, k: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        return F.elu(q) + 1, F.elu(k) + 1


@register_block("performer")
class Performer(_FeatureAttention):
    """FAVOR+ attention with `features` orthogonal positive random features, redrawn every `redraw_interval`
    training forward passes (0 = never)."""

    def __init__(self, dim: int, *, features: int = 64, redraw_interval: int = 1000, seed: int = 0, **kwargs: Any):
        super().__init__(dim, **kwargs)
        if features < 1:
            raise ValueError(f"features must be >= 1, got {features}")
        self.num_features, self.redraw_interval, self.seed = features, redraw_interval, seed
        self.register_buffer("proj", torch.zeros(features, self.head_dim), persistent=True)
        self.register_buffer("draws", torch.zeros((), dtype=torch.long), persistent=True)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long), persistent=True)
        self.redraw()

    @torch.no_grad()
    def redraw(self) -> None:
        """Draw new features from a seed derived from `seed` and the number of draws so far."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(self.draws))
        self.proj.copy_(orthogonal_gaussian(self.num_features, self.head_dim, g).to(self.proj))
        self.draws += 1

    def features(self, q: Tensor, k: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        if self.training and torch.is_grad_enabled():
            self.calls += 1
            if self.redraw_interval and int(self.calls) % self.redraw_interval == 0:
                self.redraw()
        scale = self.head_dim**-0.25
        return (
            positive_random_features(q * scale, self.proj, True),
            positive_random_features(k * scale, self.proj, False, mask, self.causal),
        )


@register_block("kernelized")
class KernelizedAttention(_FeatureAttention):
    """Positive random-feature attention whose spectral distribution (the frequency matrix W) is learned;
    `learn_spectrum=False` keeps a fixed Gaussian W (Gaussian random features of the softmax kernel)."""

    def __init__(self, dim: int, *, features: int = 64, learn_spectrum: bool = True, seed: int = 0, **kwargs: Any):
        super().__init__(dim, **kwargs)
        g = torch.Generator().manual_seed(seed)
        W = torch.randn(features, self.head_dim, generator=g).to(device=kwargs.get("device"), dtype=kwargs.get("dtype"))
        if learn_spectrum:
            self.spectrum = nn.Parameter(W)
        else:
            self.register_buffer("spectrum", W)

    def features(self, q: Tensor, k: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        scale = self.head_dim**-0.25
        return (
            positive_random_features(q * scale, self.spectrum, True),
            positive_random_features(k * scale, self.spectrum, False, mask, self.causal),
        )
