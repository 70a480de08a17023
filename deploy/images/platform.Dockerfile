# The platform image: gateway, control plane and pool manager are one static
# Go binary (`gofastapi dev`, `gofastapi pool`) on a minimal base.
# Build from the repository root: make images
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/gofastapi ./cmd/gofastapi

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gofastapi /usr/local/bin/gofastapi
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/gofastapi"]
