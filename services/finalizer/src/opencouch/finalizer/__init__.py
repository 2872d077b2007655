"""The finalizer: finalizes each ended persistent session exactly once, and reports status."""
