"""Operator commands that run against the application, local or deployed (e.g. `python -m tools.smoke`)."""
