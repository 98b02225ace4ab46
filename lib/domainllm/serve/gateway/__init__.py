"""The serving gateway: an OpenAI-compatible front over vLLM deployments that routes by
weight (stable / canary), logs every request and response, takes feedback and exposes
Prometheus metrics."""
