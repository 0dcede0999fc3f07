"""FFT helpers shared by the long-convolution blocks (S4 family, Mega's EMA)."""

from __future__ import annotations


def next_fast_len(n: int, even: bool = False) -> int:
    """Smallest 2^a 3^b 5^c >= n (sizes pocketfft / MKL transform fastest); with `even`, the smallest even one."""
    best = 1 << max(1 if even else 0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n or (even and m % 2):
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best
