"""The vector index: FAISS backends behind a small interface, kept in step with the database."""
