"""Ready chains: small linear pipelines built with weft.Chain."""
