package main

import (
	_ "connectrpc.com/grpcreflect"
	_ "github.com/FerretDB/FerretDB/ferretdb"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/valyala/fasthttp"
	_ "go.uber.org/goleak"
	_ "golang.org/x/crypto/argon2"
	_ "golang.org/x/sync/singleflight"
)

func main() {}
