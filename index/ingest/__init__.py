"""Ingest: discover files, deduplicate, decode, embed and write segments in one transaction."""
