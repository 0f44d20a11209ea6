"""The stack's Pulumi policy pack (see docs/policy.md).

The engine runs ``__main__.py`` with this folder as the working directory and ``sys.path[0]``, so the
policies live in the ``invariants`` package, which imports itself relatively and therefore also loads as
``policy.invariants`` in the tests.
"""
