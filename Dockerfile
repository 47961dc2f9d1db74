# kpk-io server image. Build: docker build -t kpk-io .   Run: see docker-compose.yml.
# Two stages: the first builds the wheel (the package with the browser files inside, as
# package data), the second installs that wheel, so the image runs what `pip install` gives a
# user, not a source tree.
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --disable-pip-version-check --no-deps -w /dist .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Dependencies in a layer of their own, rebuilt only when pyproject.toml changes.
COPY pyproject.toml /tmp/pyproject.toml
# With the `speed` extra (uvloop, hiredis, orjson): docs/performance.md.
RUN python -c "import tomllib; p = tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['speed']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt /tmp/pyproject.toml

COPY --from=build /dist/ /tmp/dist/
RUN pip install --no-deps /tmp/dist/*.whl \
    && rm -r /tmp/dist \
    && useradd --system --uid 10001 --no-create-home kpk

# The settings file (compose mounts its own copy over it).
WORKDIR /app
COPY config/kpk-io.toml /app/config/kpk-io.toml

USER kpk
ENV KPK_IO_CONFIG=/app/config/kpk-io.toml
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# SIGTERM: kpk-io stops taking requests, answers those running, then exits.
STOPSIGNAL SIGTERM
CMD ["kpk-io", "serve"]
