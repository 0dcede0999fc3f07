"""S4 family presets: `s4d_*`, `s4_*`, `dss_*`, `gss_*` for bytes, pixels and patches (no positional embedding:
the convolution kernels carry position)."""

from multiseq.presets._common import register_family

register_family("s4d", positional="none", options={"d_state": 64})
register_family("s4", positional="none", options={"d_state": 64})
register_family("dss", positional="none", options={"d_state": 64})
# GSS has its own gated expansion, so the stack adds no feed-forward.
register_family("gss", positional="none", ffn_mult=0.0, options={"d_state": 64})
