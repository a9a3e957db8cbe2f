"""Database access: models, engine and sessions, migrations."""
