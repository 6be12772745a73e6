# Quire's image: the code location, the Dagster webserver and daemon, the Celery workers and the
# researcher API all run from it (docker-compose.yml). Versions are pinned: the base image here,
# Python packages by pyproject.toml's ranges for Dagster and its libraries.
FROM python:3.11.7-slim-bookworm
WORKDIR /opt/quire
COPY pyproject.toml README.md ./
COPY quire_assets ./quire_assets
RUN pip install --no-cache-dir ".[celery,deploy]"
ENV DAGSTER_HOME=/opt/dagster/home
# A user of its own: nothing in the containers runs as root. The folders it writes are created
# here, owned by it, so that the named volumes mounted on them start with that owner.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/quire quire \
    && mkdir -p $DAGSTER_HOME/storage /opt/dagster/deploy /var/lib/quire \
    && chown -R quire:quire $DAGSTER_HOME /var/lib/quire
COPY deploy/dagster.yaml $DAGSTER_HOME/dagster.yaml
COPY deploy/workspace.yaml /opt/dagster/deploy/workspace.yaml
USER quire
EXPOSE 3000 4000 8000
