"""Build helpers run outside the Pulumi program (the layer build runs under pulumi-command)."""
