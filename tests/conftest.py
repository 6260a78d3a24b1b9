"""Shared test setup: pytest (prepend import mode) puts this directory on sys.path, so tests in
sub-directories import the shared helpers (`_esdk_helpers`, `_mpl_helpers`) as top-level modules."""
