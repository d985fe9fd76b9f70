//! Placeholder: the pooled-buffer work fills this in (atomics shim for loom).
