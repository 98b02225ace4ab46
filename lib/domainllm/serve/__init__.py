"""Serving: the vLLM OpenAI-compatible server as a managed local process."""
