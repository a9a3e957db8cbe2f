#!/bin/sh
# Container entrypoint: turn Docker/Compose secret files into settings, then run the command.
#
# For each SENSORIUM_<NAME>_FILE (and PGPASSWORD_FILE, which libpq reads as PGPASSWORD) it exports <NAME> with the
# file's content and drops the _FILE variable, so secrets stay out of the compose file and `docker inspect`.
# Only these prefixes: other *_FILE variables (SSL_CERT_FILE, ...) name real files and are left alone.
set -eu

for name in $(env | sed -n 's/^\(SENSORIUM_[A-Za-z0-9_]*\)_FILE=.*/\1/p; s/^\(PGPASSWORD\)_FILE=.*/\1/p'); do
    file=$(printenv "${name}_FILE")
    if [ ! -r "$file" ]; then
        echo "sensorium-entrypoint: ${name}_FILE=${file} is missing or not readable by uid $(id -u)" >&2
        exit 78  # EX_CONFIG: a restart will not fix it
    fi
    value=$(cat "$file")
    export "${name}=${value}"
    unset "${name}_FILE"
done

exec "$@"
