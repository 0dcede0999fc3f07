"""Text rendering, PIXEL style: text -> a grayscale strip of 16x16 patches. Independent of torch.

    from renderers import TextRenderer
    renderer = TextRenderer.from_config("pixel")      # 8 pt at 120 dpi, 529 patches of 16x16, Noto fonts
    result = renderer.render("Hello, world")           # result.pixels: uint8 (16, 8464); result.mask: (529,)

PangoCairo is used through the cffi bindings (`pip install 'multiseq[render]'`); fonts are registered by path in a
private fontconfig configuration, so the same text gives the same pixels whatever else the system has installed.
"""

from renderers.config import FontError, RenderConfig, RenderError, list_configs, load_config
from renderers.text import RenderResult, TextRenderer, is_rtl, squarify, unsquarify

__all__ = [
    "FontError",
    "RenderConfig",
    "RenderError",
    "RenderResult",
    "TextRenderer",
    "is_rtl",
    "list_configs",
    "load_config",
    "squarify",
    "unsquarify",
]
