#!/bin/sh
# Create the secret files docker-compose.yml reads (deploy/secrets/), once; existing files are kept.
# The folder is private to you; the files are world-readable so that the containers' users (sensorium, uid 10001,
# and postgres) can read them once Compose bind-mounts them under /run/secrets.
set -eu
cd "$(dirname "$0")"
mkdir -p secrets
chmod 0700 secrets
for name in postgres_password api_signing_key; do
    if [ -s "secrets/$name" ]; then
        echo "keeping secrets/$name"
        continue
    fi
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "secrets/$name"
    chmod 0644 "secrets/$name"
    echo "wrote secrets/$name"
done
