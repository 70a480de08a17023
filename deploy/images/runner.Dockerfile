# The runner image: the runner agent (static Go) on a slim Python with the
# pinned framework set every app may import. Runs as uid 10001 with a
# read-only root filesystem; the app's files go to the /work emptyDir.
# Build from the repository root: make images
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/gofastapi-runner ./cmd/gofastapi-runner

FROM python:3.12-slim-bookworm
COPY deploy/images/runner-requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=build /out/gofastapi-runner /usr/local/bin/gofastapi-runner
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/gofastapi-runner"]
