"""Model evaluation: held-out perplexity now; the suites and the promotion gate build on it."""
