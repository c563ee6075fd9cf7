# iop-bridge API image, used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY migrations ./migrations
COPY api ./api
COPY integration ./integration
COPY mappers ./mappers
COPY fhir_profiles ./fhir_profiles
RUN pip install --no-cache-dir .
EXPOSE 8000
CMD ["iop-bridge", "serve"]
