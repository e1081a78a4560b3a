"""bf16 rounding for tests: numpy has no bfloat16, so values are rounded by hand."""
import numpy as np


def bf16_words(x):
    """Round values to bf16 (round-to-nearest-even) and return (raw 16-bit words, float32 values)."""
    f = np.ascontiguousarray(x, dtype=np.float32)
    u = f.view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    vals = (rounded.astype(np.uint32) << 16).view(np.float32)
    return rounded, vals
