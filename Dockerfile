# restock-watcher: runs the watchlist mounted at /config, keeps its database on the /data volume.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY watcher ./watcher
COPY notifiers ./notifiers
RUN pip install . && useradd --system --uid 10001 --home-dir /data restock \
    && mkdir -p /data /config && chown restock /data

USER restock
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8787

# Relative `settings.database` paths resolve next to the watchlist; point it at /data in the
# mounted file (e.g. `database: /data/restock.sqlite3`) so the database lands on the volume.
ENTRYPOINT ["restock"]
CMD ["run", "--config", "/config/watchlist.yaml"]
