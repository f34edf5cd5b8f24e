# The runwire image: the SDK, the CLI and (as they land) the services.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY infra ./infra
COPY schemas ./schemas
COPY projections ./projections
COPY services ./services
RUN pip install --no-cache-dir . && useradd --system runwire
USER runwire
ENTRYPOINT []
CMD ["runwire", "--help"]
