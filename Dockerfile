FROM python:3.11-slim
WORKDIR /opt/quire
COPY pyproject.toml README.md ./
COPY quire_assets ./quire_assets
RUN pip install --no-cache-dir ".[celery]" dagster-postgres
ENV DAGSTER_HOME=/opt/dagster/home
RUN mkdir -p $DAGSTER_HOME /opt/dagster/deploy /var/lib/quire
COPY deploy/dagster.yaml $DAGSTER_HOME/dagster.yaml
COPY deploy/workspace.yaml /opt/dagster/deploy/workspace.yaml
EXPOSE 3000 4000 8000
