//! Placeholder: the pooled-buffer work fills this in.
