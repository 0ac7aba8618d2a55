"""`musicrec serve`: the trained artifacts over HTTP (FastAPI + uvicorn, the `serve` extra)."""
