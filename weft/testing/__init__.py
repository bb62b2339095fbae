"""Fakes for testing weft graphs and your own: scripted models, a local OpenAI-compatible server."""
