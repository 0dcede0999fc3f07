"""Tables (Markdown, printed and written to benchmarks/README.md) and the log-log plot of a benchmark record."""

from __future__ import annotations

from typing import Any


def _cell(e: dict[str, Any] | None, value: str, ratio: str | None) -> str:
    if e is None:
        return ""
    if e.get("status") != "ok":
        return e["status"].upper()
    ratio_v = e.get(ratio) if ratio else None
    return value + (f" ({ratio_v:.2f}x)" if isinstance(ratio_v, (int, float)) else "")


def _fmt(v: Any, spec: str = ".2f", none: str = "-") -> str:
    return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else none


def tables(record: dict[str, Any]) -> str:
    """Markdown: per mode and threads, time and memory per block and length, then the summary with targets."""
    res = record["results"]
    lengths = sorted({e["length"] for e in res})
    out: list[str] = []
    m = record.get("machine") or {}
    out.append(
        f"Machine: {m.get('cpu', '?')} ({m.get('device', '?')}), {m.get('cpu_count', '?')} CPUs; torch "
        f"{m.get('torch', '?')}; measured fp32 matmul {_fmt(m.get('matmul_gflops'), '.1f')} GFLOP/s, copy "
        f"{_fmt(m.get('copy_gbs'), '.1f')} GB/s (threads {m.get('threads', '?')}); load average before/after "
        f"{m.get('loadavg_before', '?')} / {m.get('loadavg_after', '?')}; date {record.get('date', '?')}."
    )
    groups = sorted({(e["mode"], e["threads"]) for e in res})
    for mode, t in groups:
        rows = [e for e in res if e["mode"] == mode and e["threads"] == t]
        blocks = list(dict.fromkeys(e["block"] for e in rows))
        idx = {(e["block"], e["length"]): e for e in rows}
        head = "| block | " + " | ".join(str(L) for L in lengths) + " |"
        sep = "|---" * (len(lengths) + 1) + "|"
        st = record.get("derived_from", "median_ms")
        out.append(f"\n**{mode}, {t} threads: {st[:-3]} time in ms (speed-up over `attention`)**\n")
        out += [head, sep]
        for b in blocks:
            cells = [_cell(idx.get((b, L)), _fmt(idx.get((b, L), {}).get(st), ".1f"), "speedup_vs_attention")
                     for L in lengths]
            out.append(f"| {b} | " + " | ".join(cells) + " |")
        out.append(f"\n**{mode}, {t} threads: peak memory in MB (ratio to `attention_explicit`; * = extrapolated)**\n")
        out += [head, sep]
        for b in blocks:
            cells = []
            for L in lengths:
                e = idx.get((b, L))
                c = _cell(e, _fmt((e or {}).get("peak_mem_mb"), ".1f"), "mem_vs_attention_explicit")
                cells.append(c + ("*" if e and e.get("mem_ref_extrapolated") else ""))
            out.append(f"| {b} | " + " | ".join(cells) + " |")
    out.append("\n**Summary at the longest measured length (targets for linear-time blocks; a miss shows the factor)**\n")
    out.append("| block | mode | thr | L | exp. time | exp. mem | speed-up vs attention | mem vs explicit "
               "| floor ratio | vs peers | missed targets |")
    out.append("|---" * 11 + "|")
    for s in record.get("summary", []):
        peers = s.get("speedup_vs_peer") or {}
        peer_txt = ", ".join(f"{k[5:]} {_fmt(v) + 'x' if isinstance(v, (int, float)) else v}" for k, v in peers.items())
        missed = [f"{k} ({_fmt(v.get('missed_by_factor'))}x)" for k, v in (s.get("targets") or {}).items()
                  if v.get("met") is False]
        out.append(
            f"| {s['block']} | {s['mode']} | {s['threads']} | {s.get('at_length', '-')} | "
            f"{_fmt(s.get('exponent_time'))} | {_fmt(s.get('exponent_mem'))} | "
            f"{_fmt(s.get('speedup_vs_attention'))} | {_fmt(s.get('mem_vs_attention_explicit'), '.3f')}"
            f"{'*' if s.get('mem_ref_extrapolated') else ''} | {_fmt(s.get('floor_ratio'), '.1f')} | "
            f"{peer_txt or '-'} | {'; '.join(missed) or ('none' if s.get('targets') else 'n/a')} |"
        )
    return "\n".join(out) + "\n"


def plot(record: dict[str, Any], path: str) -> str:
    """Time and memory against length, log-log, one line per block; one row of panels per (mode, threads)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = record["results"]
    groups = sorted({(e["mode"], e["threads"]) for e in res})
    names = list(dict.fromkeys(e["block"] for e in res))
    colors = plt.get_cmap("tab20")
    markers = "osD^v<>ph*"
    labelled: set[str] = set()
    fig, axes = plt.subplots(len(groups), 2, figsize=(15, 4.5 * len(groups)), squeeze=False)
    for row, (mode, t) in enumerate(groups):
        rows = [e for e in res if e["mode"] == mode and e["threads"] == t]
        for b in dict.fromkeys(e["block"] for e in rows):
            ok = sorted((e for e in rows if e["block"] == b and e.get("status") == "ok"), key=lambda e: e["length"])
            if not ok:
                continue
            i = names.index(b)
            style = dict(linestyle="--" if b.startswith("peer:") else ("-." if b.startswith("attention") else "-"),
                         marker=markers[i % len(markers)], color=colors(i % 20))
            xs = [e["length"] for e in ok]
            axes[row][0].plot(xs, [e["median_ms"] for e in ok], label=b if b not in labelled else None, **style)
            labelled.add(b)
            axes[row][1].plot(xs, [max(e.get("peak_mem_mb") or 0, 1e-2) for e in ok], **style)
        for col, (ylabel, title) in enumerate((("median time (ms)", "time"), ("peak memory (MB)", "memory"))):
            ax = axes[row][col]
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("length")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{title}, {mode}, {t} threads")
            ax.grid(True, which="both", alpha=0.3)
    ncol = max(1, -(-len(names) // (16 * len(groups))))  # about 16 entries per column per row of panels
    fig.legend(loc="center right", fontsize=7, ncol=ncol)
    fig.tight_layout(rect=(0, 0, 1 - 0.12 * ncol, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
