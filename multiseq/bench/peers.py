"""PyPI implementations of the same layers, measured by the benchmark at equal configuration.

Install them with `pip install -e ".[peers]"` (not part of `make test`). Each peer is described by the PyPI
distribution it needs, the multiseq blocks it is compared with, and a builder that returns `(module, call)` with
`call(x: (B, L, D), mask: (B, L) bool) -> (B, L, D)`. Peers are imported only when measured; a missing one is
recorded as `status: "missing"` with the pip command, never an import error at start-up.

Equal configuration (the defaults below, overridable per peer with `--options '{"peer:NAME": {...}}'`): width D
from the run, 8 heads of D/8, the same window (local: 256 = +-128; Transformer-LS: 128 with rank 32), SSM state
size 64 (the peers' default is 512), GSS with a D/4 bottleneck and 4x expansion, Mega with 16 EMA dimensions,
z = 64 and v = 2D.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from multiseq.errors import ConfigError


@dataclass(frozen=True)
class Peer:
    """A PyPI layer the benchmark compares with.

    Attributes:
        name: peer name used on the command line and in results (as `peer:NAME`).
        dist: PyPI distribution (with a pin where the current release does not run).
        module: import name checked for availability.
        compares: multiseq blocks this peer is the equal-configuration counterpart of.
        build: `(width, options, device, dtype) -> (module, call)`.
        defaults: constructor options giving the equal configuration.
        note: what differs from the multiseq block, so a reader can weigh the ratio.
    """

    name: str
    dist: str
    module: str
    compares: tuple[str, ...]
    build: Callable[..., tuple[Any, Callable[..., Any]]]
    defaults: dict[str, Any] = field(default_factory=dict)
    note: str = ""


def _mega(D: int, o: dict[str, Any], device: Any, dtype: Any):
    from mega_pytorch import MegaLayer

    m = MegaLayer(dim=D, causal=False, **o).to(device=device, dtype=dtype)
    return m, (lambda x, mask: m(x))


def _ls(D: int, o: dict[str, Any], device: Any, dtype: Any):
    from long_short_transformer import LongShortAttention

    o = dict(o)
    heads = o.pop("heads", 8)
    m = LongShortAttention(dim=D, heads=heads, dim_head=D // heads, causal=False, **o).to(device=device, dtype=dtype)
    return m, (lambda x, mask: m(x))  # inputs are all real tokens; its non-causal mask path is broken for B > 1


def _dss(D: int, o: dict[str, Any], device: Any, dtype: Any):
    from gated_state_spaces_pytorch.gss import DSS

    m = DSS(dim=D, **o).to(device=device, dtype=dtype)
    return m, (lambda x, mask: m(x))


def _gss(D: int, o: dict[str, Any], device: Any, dtype: Any):
    from gated_state_spaces_pytorch import GSS

    m = GSS(dim=D, **o).to(device=device, dtype=dtype)
    return m, (lambda x, mask: m(x))


def _local(D: int, o: dict[str, Any], device: Any, dtype: Any):
    from local_attention import LocalMHA

    o = dict(o)
    heads = o.pop("heads", 8)
    m = LocalMHA(dim=D, heads=heads, dim_head=D // heads, causal=False, **o).to(device=device, dtype=dtype)
    return m, (lambda x, mask: m(x))  # inputs are all real tokens


PEERS: dict[str, Peer] = {
    p.name: p
    for p in (
        Peer("mega-pytorch", "mega-pytorch", "mega_pytorch", ("mega", "mega_chunk"), _mega,
             {"ema_heads": 16, "attn_dim_qk": 64},
             "MegaLayer: full (unchunked) single-head attention with an explicit L x L matrix; no feed-forward"),
        Peer("long-short-transformer", "long-short-transformer", "long_short_transformer", ("ls",), _ls,
             {"heads": 8, "window_size": 128, "r": 32},
             "LongShortAttention 0.0.5 (needs rotary-embedding-torch==0.1.5); rotary positions inside"),
        Peer("dss", "gated-state-spaces-pytorch", "gated_state_spaces_pytorch", ("dss", "s4d", "s4"), _dss,
             {"kernel_N": 64},
             "DSS layer of gated-state-spaces-pytorch: LayerNorm + FFT convolution + D skip, no output projection"),
        Peer("gss", "gated-state-spaces-pytorch", "gated_state_spaces_pytorch", ("gss",), _gss,
             {"dss_kernel_N": 64, "dim_expansion_factor": 4},
             "GSS of gated-state-spaces-pytorch (its own LayerNorm and residual)"),
        Peer("local-attention", "local-attention", "local_attention", ("local", "contextpool+local"), _local,
             {"window_size": 128},
             "LocalMHA: buckets of 128 looking one bucket back and forward (128..256 keys each side)"),
    )
}


def list_peers() -> list[str]:
    return sorted(PEERS)


def peer_available(name: str) -> bool:
    return importlib.util.find_spec(get_peer(name).module) is not None


def get_peer(name: str) -> Peer:
    if name not in PEERS:
        raise ConfigError(f"unknown peer {name!r}; known peers: {', '.join(list_peers())}")
    return PEERS[name]


def build_peer(name: str, width: int, options: dict[str, Any], *, device: Any = None, dtype: Any = None):
    """`(module, call)` for peer `name` at width `width`, its equal-configuration defaults updated by `options`."""
    peer = get_peer(name)
    if not peer_available(name):
        raise ModuleNotFoundError(f"peer {name!r} needs `pip install {peer.dist}` (or `pip install -e '.[peers]'`)")
    opts = {**peer.defaults, **options}
    if name == "gss":
        opts.setdefault("dss_kernel_H", max(1, width // 4))  # bottleneck 4, as in the GSS paper
    if name == "mega-pytorch":
        opts.setdefault("attn_dim_value", 2 * width)
    return peer.build(width, opts, device, dtype)
