"""Attention baselines: full softmax attention (SDPA) and blocked sliding-window attention."""

from multiseq.presets._common import register_family

register_family("attention", options={"heads": 4})
register_family("local", options={"heads": 4, "window": 128})
