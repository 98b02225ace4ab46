"""Kubernetes objects for stages and training jobs, as plain dicts (no client library), and
how to read what the API answers about them. The launcher in `domainllm_operators` sends
them; `domainllm k8s render` writes them for review."""
