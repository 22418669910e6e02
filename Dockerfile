# syntax=docker/dockerfile:1
# One image for every process: `conexapi api | worker | beat | migrate`.

# --- build: wheels for the project and its dependencies -------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY conexapi ./conexapi
COPY workers ./workers
COPY connectors ./connectors
COPY migrations ./migrations
RUN pip wheel --wheel-dir /wheels .

# --- runtime: slim, no compilers, a non-root user ------------------------------------
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CONEXAPI_ENV=production \
    CONEXAPI_API_HOST=0.0.0.0 \
    CONEXAPI_API_PORT=8000 \
    CONEXAPI_WORKER_METRICS_HOST=0.0.0.0 \
    CONEXAPI_WORKER_METRICS_PORT=9191
RUN groupadd --system --gid 10001 conexapi \
    && useradd --system --uid 10001 --gid conexapi --home-dir /app --shell /usr/sbin/nologin conexapi
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels conexapi && rm -rf /wheels
WORKDIR /app
# /app/state holds beat's schedule file (a volume in docker-compose.yml).
RUN mkdir -p /app/state && chown -R conexapi:conexapi /app
USER 10001:10001
# 8000: the API; 9191: a worker's metrics (conexapi worker).
EXPOSE 8000 9191
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["conexapi"]
CMD ["api"]
