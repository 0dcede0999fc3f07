"""Transformer-LS presets (`ls_{bytes,pixels,patches}_{tiny,small,base}`).

Windows and ranks follow the paper's LRA scale: a window of a few dozen tokens and a dynamic-projection rank of a
few dozen for 1K-4K sequences. Pixel models pool with a global CLS token (the block's `cls` option, as in the
paper's LRA image/Pathfinder runs); byte and patch models pool by mean.
"""

from multiseq.presets._common import register_family

register_family("ls", adapters=("bytes",), options={"heads": 4, "window": 64, "rank": 32})
register_family("ls", adapters=("pixels",), pool="cls", options={"heads": 4, "window": 64, "rank": 32, "cls": True})
register_family("ls", adapters=("patches",), options={"heads": 4, "window": 16, "rank": 8})
