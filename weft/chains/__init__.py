"""Ready chains: small linear pipelines built with weft.Chain."""

__all__: list[str] = []
