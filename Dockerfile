# daguha's container image, built without any image registry: `make image`
# compiles the binary static (CGO_ENABLED=0) on the host and stages it in
# bin/image with the host's CA certificates, an /etc/passwd line for the
# non-root user and a static busybox, the shell for the steps workers run
# (`sh -c`): make image builds no image without it. This file only copies
# the staged tree. ops/deploy/worker-image puts daguha on a base image
# that has a team's tools.
FROM scratch

COPY etc/ /etc/
COPY bin/ /bin/
COPY --chown=65532:65532 tmp/ /tmp/
COPY --chown=65532:65532 var/lib/daguha/ /var/lib/daguha/
COPY daguha /usr/local/bin/daguha

ENV PATH=/usr/local/bin:/bin \
    DAGU_HOME=/var/lib/daguha \
    HOME=/var/lib/daguha \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /var/lib/daguha

# HTTP API and /metrics, gRPC (workers and servers), Raft, gossip.
EXPOSE 8080 50055 8300 8301 8301/udp

# SERVING once the server knows a cluster leader. Workers do not serve
# gRPC: their services turn this check off (Compose: healthcheck.disable).
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/daguha", "health", "-timeout=2s"]

ENTRYPOINT ["/usr/local/bin/daguha"]
CMD ["start-all", "--host=0.0.0.0"]
