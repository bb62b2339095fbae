"""Ready chains: small linear pipelines built with weft.Chain.

- :func:`classify` (``classify.py``): text -> one of a set of labels, with a score and reasons.
"""

from weft.chains.classify import Classification, ClassificationError, classify

__all__ = ["Classification", "ClassificationError", "classify"]
