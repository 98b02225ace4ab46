"""Serving on Kubernetes: the rollout's Deployments and Traffic against the API server."""
