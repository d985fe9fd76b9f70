//! Placeholder: the demo-server work fills this in.
