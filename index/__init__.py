"""Sensorium index: media decoding, encoders, the vector index, ingest and search."""
