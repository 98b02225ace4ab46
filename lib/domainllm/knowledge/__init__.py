"""The domain knowledge base: documents chunked by the embedding model's tokens, embedded,
and kept in a vector store (LanceDB embedded, or PostgreSQL with pgvector), one version per
pipeline run; searched by the gateway for retrieval-augmented answers with citations."""
