"""The bundled default corpus (pydocs) and the script that builds it."""
