# The runwire image: the SDK, the CLI and every `runwire serve` service
# (docker-compose.yml runs one container per service).
FROM python:3.11-slim
WORKDIR /app
# The exact versions CI tested, their hashes checked (requirements.lock, made
# by ./dev lock); a layer of its own so that code changes do not reinstall them.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
COPY infra ./infra
COPY schemas ./schemas
COPY projections ./projections
COPY services ./services
# runwire itself on top, resolving nothing again; pip check proves the lock
# satisfies what pyproject.toml asks for.
RUN pip install --no-cache-dir --no-deps . && pip check && useradd --system runwire
USER runwire
# The API (RUNWIRE_API_PORT) and every service's /metrics, /healthz, /readyz
# (RUNWIRE_METRICS_PORT), as docker-compose.yml sets them.
EXPOSE 8080 9100
ENTRYPOINT []
CMD ["runwire", "--help"]
