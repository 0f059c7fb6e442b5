# The panel's own image, per the seed's section 2: uv in a build stage, a venv copied into
# a slim runtime, non-root uid 1001. BASE_IMAGE lets tests build from a local base image.
# Django 6 needs Python 3.12+, so the default base is python:3.12-slim.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS builder
WORKDIR /app
RUN pip install --no-cache-dir uv==0.13.9
# uv's own certificate store misses corporate / inspecting proxies: use the image's CA bundle.
ENV UV_NATIVE_TLS=1
COPY pyproject.toml uv.lock ./
RUN uv venv /opt/venv --python "$(command -v python3)" \
 && UV_PROJECT_ENVIRONMENT=/opt/venv uv sync --frozen --no-dev --no-install-project --no-cache \
      --compile-bytecode

FROM ${BASE_IMAGE} AS runner
WORKDIR /app
RUN useradd --create-home --uid 1001 --user-group helmdeck
COPY --from=builder /opt/venv /opt/venv
COPY --chown=1001:1001 . .
# The venv's packages are compiled above and the panel's here: the process cannot write
# .pyc files into the root-owned venv (nor anywhere under PYTHONDONTWRITEBYTECODE, which
# our local bases set), and without them every start compiles Django and the kubernetes
# client from source (~2 s more per process on our machines).
RUN python -m compileall -q controlpanel deployments cli
ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=controlpanel.settings \
    HELMDECK_STATE_DIR=/home/helmdeck/state
USER 1001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
# controlpanel.serve runs uvicorn trusting forwarded headers only from HELMDECK_TRUSTED_PROXIES.
CMD ["python", "-m", "controlpanel.serve", "--host", "0.0.0.0", "--port", "8000"]
