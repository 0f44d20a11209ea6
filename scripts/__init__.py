"""Build helpers: the Lambda artifacts (scripts/build_artifacts.py), used by the program and by hand."""
