"""The Pulumi program: config -> one provider per region -> components -> stack outputs."""
