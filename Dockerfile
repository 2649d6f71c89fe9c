# cxprobe's container image (docker-compose.yml builds it; see README "Running in production").
#   docker build -t cxprobe .                     the monitor (the default target, the last stage)
#   docker build --target sandbox -t cxprobe-sandbox .   the same image plus Dovecot, for the demo
# Checked by tests/unit/test_compose.py (non-root user, Debian's Chromium, no browser downloads).

FROM python:3.11-slim-bookworm AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Debian's Chromium is the browser the web-chat probe drives (/usr/lib/chromium/chromium):
# Playwright's own browser downloads are never used, so there is no `playwright install` here.
# Chromium's recommended fonts keep the chat screenshots (evidence) legible.
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium fonts-liberation \
    && rm -rf /var/lib/apt/lists/*

# The source stays in /opt/cxprobe (read-only for the service user): the sandbox's profiles are
# read from there by relative path (sandbox/profiles/demo.yaml).
WORKDIR /opt/cxprobe
COPY pyproject.toml README.md ./
COPY cxprobe ./cxprobe
COPY probes ./probes
COPY scenarios ./scenarios
COPY exporters ./exporters
COPY sandbox ./sandbox
RUN pip install . && rm -rf build ./*.egg-info

# The evidence store (SQLite by default: point monitor.store_url at /var/lib/cxprobe) and the
# service user's home. The configuration is mounted read-only at /etc/cxprobe/config.yaml.
RUN groupadd --system --gid 10001 cxprobe \
    && useradd --system --uid 10001 --gid cxprobe --home-dir /var/lib/cxprobe \
        --shell /usr/sbin/nologin cxprobe \
    && mkdir -p /var/lib/cxprobe /etc/cxprobe \
    && chown cxprobe:cxprobe /var/lib/cxprobe
VOLUME /var/lib/cxprobe
WORKDIR /var/lib/cxprobe
USER cxprobe

# /metrics, /healthz and the provider webhooks (monitor.http; in a container set its host to
# 0.0.0.0 and publish the port on the host's loopback or behind a reverse proxy only).
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]
ENTRYPOINT ["cxprobe"]
CMD ["run", "-c", "/etc/cxprobe/config.yaml"]


# The reference contact centre of `make demo` (python -m sandbox). Its mail desk runs real
# Dovecot, which is started as root to hand its mail processes to `nobody` (the sandbox chowns
# the mail homes); everything it serves listens on 127.0.0.1 of its own network namespace.
# openssl makes the desk's private CA and certificate; espeak-ng and flite synthesise the phone
# line's far end (Media Streams audio).
FROM runtime AS sandbox
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        dovecot-imapd dovecot-lmtpd dovecot-sieve openssl espeak-ng flite \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/cxprobe
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8025/healthz', timeout=4)"]
ENTRYPOINT ["python", "-m", "sandbox"]
CMD ["--profile", "sandbox/profiles/demo.yaml", "--workdir", "/tmp/sandbox"]


# The monitor is the default target (`docker build .` builds the last stage).
FROM runtime AS cxprobe
