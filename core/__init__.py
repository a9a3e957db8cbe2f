"""Sensorium core: settings, database, blob store, queue app and shared errors."""
