"""Data validation: per-file tables and the Great Expectations suites over them."""
