//! The game suite's fixtures: all shared (`../common`, `test-support`).

pub(crate) use crate::common::*;
