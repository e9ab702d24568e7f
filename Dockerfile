# syntax=docker/dockerfile:1
# Build stage: build the wheel and install it with its dependencies into a venv.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
RUN python -m venv /opt/tracksvc
COPY pyproject.toml README.md ./
COPY tracksvc ./tracksvc
COPY carriers ./carriers
RUN /opt/tracksvc/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/tracksvc/bin/pip install --no-cache-dir .

# Run stage: only the venv, as a non-root user.
FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin tracksvc
COPY --from=build /opt/tracksvc /opt/tracksvc
ENV PATH="/opt/tracksvc/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    TRACKSVC_HOST=0.0.0.0 \
    TRACKSVC_PORT=8080 \
    TRACKSVC_LOG_JSON=true
USER tracksvc
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TRACKSVC_PORT', '8080'), timeout=2)"]
ENTRYPOINT ["tracksvc"]
CMD ["serve"]
