"""Serving: an OpenAI-compatible HTTP server with request batching over a local model."""

from saro.serve.engine import BatchingEngine, GenerationRequest
from saro.serve.server import ServeConfig, make_server, serve

__all__ = ["BatchingEngine", "GenerationRequest", "ServeConfig", "make_server", "serve"]
