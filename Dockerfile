# syntax=docker/dockerfile:1
# Vigil container image: build once with the dev toolchain, run with production dependencies
# only, as a non-root user on a read-only root filesystem (deploy/kubernetes sets that).
#   docker build -t vigil .
#   docker run --rm -p 9192:9192 vigil          (gRPC stays on 127.0.0.1 inside the container:
#                                                run Envoy in the same network namespace, as in a pod)

# ---- build: compile TypeScript to dist/ ----
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts/build-console.mjs ./scripts/
RUN npm run build

# ---- runtime ----
FROM node:24-bookworm-slim AS runtime
# --max-semi-space-size=16: V8's young generation as Node 20 sized it (2 x 16 MB). Node 24 grows
# it with the allocation rate to 2 x 64 MB and keeps it committed, which doubled the sidecar's RSS
# (bench/memory.bench.ts on Node 24: 199 -> 86 MB added for 100k subjects; Check CPU within the
# noise of interleaved runs, issue #9). A manifest that sets NODE_OPTIONS replaces this one, so it
# repeats the flag (deploy/kubernetes, deploy/istio; test/deploy/node-flags.test.ts checks).
ENV NODE_ENV=production NODE_OPTIONS=--max-semi-space-size=16
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
  && npm cache clean --force
COPY --from=build /app/dist ./dist
# The .proto files are read at run time (src/transport/envoy/proto.ts: <root>/proto/).
COPY proto ./proto
COPY examples ./examples
# uid/gid 10001 matches runAsUser/fsGroup in deploy/kubernetes; the journal directory is the
# only place Vigil writes.
RUN groupadd --gid 10001 vigil \
  && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin vigil \
  && mkdir -p /var/lib/vigil \
  && chown 10001:10001 /var/lib/vigil
USER 10001:10001
VOLUME ["/var/lib/vigil"]
# 9191 gRPC ext_authz (Check + grpc.health.v1), 9192 HTTP (metrics, health, admin, SSF).
EXPOSE 9191 9192
# Docker only; Kubernetes ignores HEALTHCHECK and uses the probes in deploy/kubernetes.
HEALTHCHECK --interval=10s --timeout=2s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9192/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["serve", "--policy", "examples/policies", "--signals", "examples/signals.yaml", "--http-host", "0.0.0.0", "--journal", "/var/lib/vigil/journal.jsonl"]
