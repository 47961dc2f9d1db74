# kpk-io server image. Build: docker build -t kpk-io .   Run: see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies in a layer of their own, rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
# Editable, so the package is /app/kpk_io and finds the browser files in /app/web beside it.
RUN pip install --no-deps -e . \
    && useradd --system --uid 10001 --no-create-home kpk

USER kpk
ENV KPK_IO_CONFIG=/app/config/kpk-io.toml
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# SIGTERM: kpk-io stops taking requests, answers those running, then exits.
STOPSIGNAL SIGTERM
CMD ["kpk-io", "serve"]
