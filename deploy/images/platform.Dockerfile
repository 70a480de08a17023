# The platform image: gateway, control plane and pool manager are one static
# Go binary (`gofastapi dev`, `gofastapi pool`), on the runners' Python: the
# control plane validates and compiles apps in the interpreter the runners
# use (with the same packages, so "allowed but not installed" means the
# same), and installs apps' dependencies (requirements.txt) with its pip.
# Build from the repository root: make images
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/gofastapi ./cmd/gofastapi

FROM python:3.12-slim-bookworm
COPY deploy/images/runner-requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt \
  && ln -s /usr/local/bin/python3 /usr/bin/python3
COPY --from=build /out/gofastapi /usr/local/bin/gofastapi
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/gofastapi"]
