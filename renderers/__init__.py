"""Text rendering (PIXEL-style strips of 16x16 patches). Independent of torch."""
