"""ContextPool presets: adaptive context pooling before local or full attention.

`contextpool_local_{adapter}_{size}` and `contextpool_attention_{adapter}_{size}` wrap every layer's attention
(`contextpool+local`, `contextpool+attention`). Bytes and pixels are pooled as 1-D sequences; patches are pooled
on their 2-D grid, taken from the patch adapter's `EmbedSpec.grid`.
"""

from multiseq.adapters import build_adapter
from multiseq.presets._common import ADAPTERS, register_family

# A band of +-8 tokens with sigma up to 4: the paper's pooling is local (a Gaussian around each token).
POOL = {"radius": 8, "sigma_max": 4.0}
# Patch grids are small (8 x 8 for 32x32 images in 4x4 patches): a +-2 patch square, sigma up to 1.5.
GRID_POOL = {"radius": 2, "sigma_max": 1.5, "grid": list(build_adapter(ADAPTERS["patches"]).embed_spec().grid)}

INNER = {
    "local": {"heads": 4, "window": 128},
    "attention": {"heads": 4},
}

for _inner, _inner_opts in INNER.items():
    _name = f"contextpool+{_inner}"
    register_family(_name, adapters=("bytes", "pixels"), options={**POOL, "inner": dict(_inner_opts)})
    register_family(_name, adapters=("patches",), options={**GRID_POOL, "inner": dict(_inner_opts)})
