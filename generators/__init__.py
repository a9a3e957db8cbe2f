"""Generative models: a registry of named diffusers generators, request validation, lazy pipelines and runs."""
