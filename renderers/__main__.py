"""`python -m renderers`: render a text to a PNG, or measure rendering throughput.

    python -m renderers "Hello, world" -o hello.png            # the strip (add --square for 368 x 368)
    python -m renderers --bench                                # texts and patches per second, every rendering
    python -m renderers --bench --file reviews.txt --limit 2000
    python -m renderers --bench --modes bigrams,bigrams-nocache   # one or more renderings (`--words`: words only)

The benchmark prints one JSON object: the first mode's figures at the top level and, when several modes are
measured, every mode's figures side by side under "modes" (the same texts, one after the other, one thread).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from renderers.config import list_configs
from renderers.text import RENDERINGS, TextRenderer, squarify

# `bigrams-nocache`: bigrams with the patch cache off, to show what the cache buys.
BENCH_MODES = (*RENDERINGS, "bigrams-nocache")

# A mixed-script sample for the benchmark when no file is given (about 60 to 120 characters each).
SAMPLE = [
    "The quick brown fox jumps over the lazy dog while the band plays on, again and again.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю — это старая фраза.",
    "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία, είπε ο συγγραφέας στο τέλος του βιβλίου.",
    "نص عربي قصير للتجربة، يكتب من اليمين إلى اليسار مع بعض الكلمات الأخرى.",
    "עברית נכתבת מימין לשמאל, וזה משפט לדוגמה עם כמה מילים נוספות.",
    "यह एक छोटा हिंदी वाक्य है जो देवनागरी लिपि में लिखा गया है।",
    "我们在这里测试中文文本的渲染速度，以及字体回退是否正常工作。",
    "日本語のテキストもここで描画します。漢字とひらがなとカタカナ。",
    "한국어 문장도 렌더링 속도를 측정하기 위해 여기에 포함되어 있습니다.",
    "I watched this film twice and it was even better the second time; the acting is superb.",
]


def bench(renderer: TextRenderer, lines: list, seconds: float = 3.0, rendering: str | None = None
          ) -> dict[str, float]:
    """Render `lines` (texts, or word lists) round-robin for about `seconds` on this one thread.

    Returns lines (texts) and patches (text patches plus the end patch) per wall-clock second and per CPU second
    of this process (the per-core rate, less sensitive to other work on a shared machine). Caches (words,
    bigrams) are warm: the lines are rendered once before the timing."""
    for line in lines[:50]:
        renderer.render(line, rendering)  # build fonts and glyph caches outside the timing
    n, patches, t0, c0 = 0, 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        for line in lines:
            patches += renderer.render(line, rendering).num_text_patches + 1
        n += len(lines)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    return {"lines": n, "wall_s": round(dt, 3), "cpu_s": round(dc, 3), "lines_per_second": round(n / dt, 1),
            "lines_per_cpu_second": round(n / dc, 1), "patches_per_second": round(patches / dt, 1),
            "patches_per_cpu_second": round(patches / dc, 1), "mean_patches": round(patches / n, 1),
            "mean_chars": round(sum(map(_chars, lines)) / len(lines), 1)}


def _chars(line: str | list[str]) -> int:
    return len(line) if isinstance(line, str) else len(" ".join(line))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m renderers", description=__doc__.splitlines()[0])
    p.add_argument("text", nargs="?", help="text to render")
    p.add_argument("-o", "--out", default="render.png", help="PNG to write (default: render.png)")
    p.add_argument("--config", default="pixel", help=f"bundled name ({', '.join(list_configs())}) or JSON path")
    p.add_argument("--square", action="store_true", help="write the squarified view (368 x 368 for pixel)")
    p.add_argument("--bench", action="store_true", help="measure lines per second on one core")
    p.add_argument("--file", help="benchmark lines from this UTF-8 text file (one per line)")
    p.add_argument("--limit", type=int, default=5000, help="at most this many lines from --file")
    p.add_argument("--seconds", type=float, default=3.0, help="benchmark duration")
    p.add_argument("--words", action="store_true", help="benchmark word mode only (same as --modes words)")
    p.add_argument("--modes", default="continuous,words,bigrams",
                   help=f"comma-separated renderings to benchmark, from {', '.join(BENCH_MODES)} "
                        f"(default: continuous,words,bigrams)")
    p.add_argument("--rendering", default="continuous", choices=RENDERINGS, help="rendering of the PNG")
    args = p.parse_args(argv)
    if args.bench:
        modes = ["words"] if args.words else [m.strip() for m in args.modes.split(",") if m.strip()]
        unknown = [m for m in modes if m not in BENCH_MODES]
        if unknown or not modes:
            p.error(f"--modes: unknown {unknown}; choose from {', '.join(BENCH_MODES)}")
        if args.file:
            with open(args.file, encoding="utf-8") as f:
                lines = [line.strip() for line in f if line.strip()][: args.limit]
        else:
            lines = SAMPLE
        results = []
        for mode in modes:
            renderer = TextRenderer.from_config(args.config)  # fresh caches for each mode
            if mode == "bigrams-nocache":
                renderer.bigram_cache_size = 0
            rendering = "bigrams" if mode == "bigrams-nocache" else mode
            results.append({"mode": mode, **bench(renderer, lines, args.seconds, rendering)})
        out = {**results[0], "threads": 1, "pid": os.getpid()}
        if len(results) > 1:
            out["modes"] = results
        print(json.dumps(out))
        return 0
    renderer = TextRenderer.from_config(args.config, rendering=args.rendering)
    if args.text is None:
        p.error("give a text to render, or --bench")
    from PIL import Image

    result = renderer.render(args.text)
    pixels = squarify(result.pixels, renderer.config.pixels_per_patch) if args.square else result.pixels
    Image.fromarray(pixels).save(args.out)
    print(f"{args.out}: {result.num_text_patches} text patches, {result.missing_glyphs} missing glyphs"
          f"{', truncated' if result.truncated else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
