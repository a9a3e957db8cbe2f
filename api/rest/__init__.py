"""The Sensorium REST API (Litestar), built by ``api.rest.app.create_app``."""
