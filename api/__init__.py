"""Sensorium's interfaces: the REST app and the admin CLI."""
