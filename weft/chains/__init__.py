"""Ready chains: small linear pipelines built with weft.Chain."""

from weft.chains.structured import extract_structured

__all__: list[str] = ["extract_structured"]
