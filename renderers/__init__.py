"""Text rendering, PIXEL style: text -> a grayscale strip of 16x16 patches. Independent of torch.

    from renderers import TextRenderer, environment
    renderer = TextRenderer.from_config("pixel")      # 8 pt at 120 dpi, 529 patches of 16x16, Noto fonts
    result = renderer.render("Hello, world")           # result.pixels: uint8 (16, 8464); result.mask: (529,)
    renderer.render("Hello, world", rendering="bigrams")   # two characters per patch ("continuous", "words")
    environment("pixel")                               # font sha256s and library versions, to store with a model

PangoCairo is used through the cffi bindings (`pip install 'multiseq[render]'`); fonts are registered by path in a
private fontconfig configuration, so the same text gives the same pixels whatever else the system has installed.
"""

from renderers._graphemes import graphemes
from renderers.config import FontError, RenderConfig, RenderError, list_configs, load_config
from renderers.environment import check_environment, environment
from renderers.text import RENDERINGS, RenderResult, TextRenderer, is_rtl, squarify, unsquarify

__all__ = [
    "RENDERINGS",
    "FontError",
    "RenderConfig",
    "RenderError",
    "RenderResult",
    "TextRenderer",
    "check_environment",
    "environment",
    "graphemes",
    "is_rtl",
    "list_configs",
    "load_config",
    "squarify",
    "unsquarify",
]
