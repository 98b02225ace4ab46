"""domainllm: turn a general base LLM into a domain LLM and keep it improving.

This package is the worker-side library. Nothing below it imports Airflow.
"""

__version__ = "0.1.0"
