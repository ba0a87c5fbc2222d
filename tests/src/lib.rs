//! Integration tests of sagaflow live in `tests/`.
