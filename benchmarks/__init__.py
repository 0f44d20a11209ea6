"""Benchmarks that print figures with the machine they ran on (run each as a script)."""
