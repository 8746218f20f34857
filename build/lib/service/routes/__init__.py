"""HTTP routes, one router per concern (FastAPI's "bigger applications" layout)."""
