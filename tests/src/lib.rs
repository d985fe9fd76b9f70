//! Integration and trybuild suites live in `tests/`; this library is empty on purpose.
