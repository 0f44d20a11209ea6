"""The account bootstrap: a Pulumi project of its own (Pulumi.yaml here); see __main__.py."""
