# kubepulse agent image (deploy/kubernetes/daemonset.yaml runs it).
#   docker build -t kubepulse:0.1.0 .
# Stage 1 compiles the CO-RE BPF objects (clang; no kernel headers: bpf/Makefile) and the
# dashboard's static files (npm ci, pinned by web/package-lock.json), then installs the wheel
# into a venv. Stage 2 is the runtime: Python, the system libbpf and the venv; no compiler.

FROM debian:bookworm-slim AS build
# Debian's own packages, versions fixed by the bookworm release they come from.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        clang llvm libbpf-dev make gcc libc6-dev \
        python3 python3-venv python3-dev \
        nodejs npm ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN python3 -m venv /opt/kubepulse \
    && /opt/kubepulse/bin/pip install --no-cache-dir --upgrade "pip==24.3.1" \
    && /opt/kubepulse/bin/pip install --no-cache-dir . \
    && /opt/kubepulse/bin/kubepulse --version

FROM debian:bookworm-slim AS runtime
# libbpf1: the system libbpf the collector loads (libbpf.so.1); python3: the agent.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 libbpf1 libelf1 zlib1g \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/kubepulse /opt/kubepulse
ENV PATH="/opt/kubepulse/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
LABEL org.opencontainers.image.title="kubepulse" \
      org.opencontainers.image.description="eBPF network anomaly detection for Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
EXPOSE 9810
# Root, with only CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN (and CAP_SYS_RESOURCE on 5.8-5.10) left
# by the DaemonSet: a non-root process gets no effective capabilities in Kubernetes (no ambient
# capabilities), and bpf() and perf_event_open() check them. See deploy/kubernetes/daemonset.yaml.
# hadolint ignore=DL3002
USER 0
HEALTHCHECK NONE
ENTRYPOINT ["kubepulse"]
CMD ["run", "--help"]
