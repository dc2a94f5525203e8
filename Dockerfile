# restock-watcher: runs the watchlist mounted at /config, keeps its database on the /data volume.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RESTOCK_DATABASE=/data/restock.sqlite3 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY watcher ./watcher
COPY notifiers ./notifiers
RUN pip install '.[postgres]' && useradd --system --uid 10001 --home-dir /data restock \
    && mkdir -p /data /config && chown restock /data

USER restock
WORKDIR /data
VOLUME ["/data"]
# `settings.server.listen: 0.0.0.0:8787` makes /healthz and /metrics reachable from outside.
EXPOSE 8787

# RESTOCK_DATABASE puts the database on the /data volume, whatever the mounted watchlist says.
ENTRYPOINT ["restock"]
CMD ["run", "--config", "/config/watchlist.yaml"]
