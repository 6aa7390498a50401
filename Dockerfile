# quics server image: docker build -t quics .
#
# Two stages: the Go toolchain builds static binaries, and the image that
# runs them is distroless (no shell, no package manager) and runs as the
# nonroot user (uid 65532).

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, in their own layer: a source edit does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/bin/ ./cmd/quics ./cmd/qic
# The data directory, owned by nonroot: the final stage has no shell to
# create it, so it is made here and copied with its owner.
RUN mkdir -p /out/data && chown 65532:65532 /out/data && chmod 0700 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bin/quics /out/bin/qic /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
# Database, chunk packs, TLS key, admin token and the generated password.
ENV QUICS_DATA=/data
VOLUME /data
# The sync protocol: QUIC over UDP.
EXPOSE 6122/udp
# The admin API (HTTP on 6120/tcp, HTTP/3 on 6121/udp) listens on loopback
# inside the container and is deliberately not exposed: run admin commands
# with `docker exec quics quics ...`.
HEALTHCHECK CMD ["/usr/local/bin/quics", "health"]
ENTRYPOINT ["/usr/local/bin/quics"]
CMD ["run"]
