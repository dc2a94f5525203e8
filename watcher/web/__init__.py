"""The web UI and its JSON API, served beside /healthz and /metrics when `server.web` is on."""
