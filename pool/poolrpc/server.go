// Package poolrpc serves a pool to several gateways over Connect
// (PoolService, `gofastapi pool`) and is the gateways' client of it.
//
// The server keeps one runner per app version across all callers: Claim
// returns the runner already serving the version (one adopted from an
// earlier pool manager included) and makes concurrent first Claims share
// one cold start. Callers authenticate with a shared token.
package poolrpc

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/singleflight"

	"github.com/gofastapi/gofastapi/pool"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// ClaimTimeout bounds one shared cold start, whoever asked first.
const ClaimTimeout = 2 * time.Minute

// Server implements PoolService over the current pool.
type Server struct {
	log    *slog.Logger
	flight singleflight.Group

	mu      sync.Mutex
	pool    *pool.Pool // nil while this manager does not lead
	byID    map[string]*pool.Runner
	ids     map[*pool.Runner]string
	leading bool
}

var _ gofastapiv1connect.PoolServiceHandler = (*Server)(nil)

// NewServer returns a Server without a pool: it answers Unavailable until
// SetPool.
func NewServer(log *slog.Logger) *Server {
	return &Server{log: log, byID: map[string]*pool.Runner{}, ids: map[*pool.Runner]string{}}
}

// SetPool makes the server hand out p's runners; nil (leadership lost)
// makes it answer Unavailable. Runner ids of an earlier pool are forgotten:
// callers see them gone and claim again.
func (s *Server) SetPool(p *pool.Pool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pool = p
	s.leading = p != nil
	s.byID = map[string]*pool.Runner{}
	s.ids = map[*pool.Runner]string{}
}

// Leading reports whether the server has a pool.
func (s *Server) Leading() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leading
}

func (s *Server) current() (*pool.Pool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pool == nil {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("this pool manager is not the leader; retry"))
	}
	return s.pool, nil
}

// idOf names r, registering it with p if new.
func (s *Server) idOf(p *pool.Pool, r *pool.Runner) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.ids[r]; ok {
		return id
	}
	b := make([]byte, 12)
	rand.Read(b)
	id := hex.EncodeToString(b)
	s.ids[r], s.byID[id] = id, r
	go func() {
		<-r.Done()
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.byID[id] == r {
			delete(s.byID, id)
			delete(s.ids, r)
		}
	}()
	return id
}

type claimed struct {
	r    *pool.Runner
	cold bool
}

// Claim implements PoolService.
func (s *Server) Claim(ctx context.Context, req *connect.Request[v1.PoolServiceClaimRequest]) (*connect.Response[v1.PoolServiceClaimResponse], error) {
	sr := req.Msg.GetSpecialize()
	if sr.GetAppId() == "" || sr.GetVersion() == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("specialize.app_id and specialize.version are required"))
	}
	p, err := s.current()
	if err != nil {
		return nil, err
	}
	key := pool.ServeKey(sr)
	ch := s.flight.DoChan(sr.GetAppId()+"\x00"+key, func() (any, error) {
		if r := p.Serving(sr.GetAppId(), key); r != nil {
			return claimed{r: r}, nil
		}
		// Shared by every caller waiting: not bound to the first one's context.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ClaimTimeout)
		defer cancel()
		r, err := p.Claim(cctx, sr)
		if err != nil {
			s.log.Warn("claim", "app", sr.GetAppId(), "version", sr.GetVersion(), "err", err)
			return nil, err
		}
		return claimed{r: r, cold: true}, nil
	})
	var res singleflight.Result
	select {
	case res = <-ch:
	case <-ctx.Done():
		return nil, connect.NewError(connect.CodeDeadlineExceeded, ctx.Err())
	}
	if res.Err != nil {
		return nil, res.Err
	}
	c := res.Val.(claimed)
	c.r.Touch()
	return connect.NewResponse(&v1.PoolServiceClaimResponse{RunnerId: s.idOf(p, c.r), AppAddr: c.r.Addr(), Cold: c.cold && !res.Shared}), nil
}

// Touch implements PoolService.
func (s *Server) Touch(ctx context.Context, req *connect.Request[v1.PoolServiceTouchRequest]) (*connect.Response[v1.PoolServiceTouchResponse], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range req.Msg.GetTouched() {
		if r := s.byID[id]; r != nil {
			r.Touch()
		}
	}
	for id, us := range req.Msg.GetFirstByteMicros() {
		if r := s.byID[id]; r != nil {
			r.Answered(time.Duration(us) * time.Microsecond)
		}
	}
	out := &v1.PoolServiceTouchResponse{}
	for _, id := range req.Msg.GetWatched() {
		r := s.byID[id]
		gone := r == nil
		if r != nil {
			select {
			case <-r.Done():
				gone = true
			default:
			}
		}
		if gone {
			out.Gone = append(out.Gone, id)
		}
	}
	return connect.NewResponse(out), nil
}

// Release implements PoolService.
func (s *Server) Release(ctx context.Context, req *connect.Request[v1.PoolServiceReleaseRequest]) (*connect.Response[v1.PoolServiceReleaseResponse], error) {
	s.mu.Lock()
	r := s.byID[req.Msg.GetRunnerId()]
	s.mu.Unlock()
	if r != nil {
		r.Release()
	}
	return connect.NewResponse(&v1.PoolServiceReleaseResponse{}), nil
}

// Handler returns the service's path and handler, which accepts only
// callers that present token.
func (s *Server) Handler(token string) (string, http.Handler) {
	return gofastapiv1connect.NewPoolServiceHandler(s, connect.WithInterceptors(tokenAuth(token)))
}

// tokenAuth refuses calls without "Authorization: Bearer <token>".
func tokenAuth(token string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			got, ok := strings.CutPrefix(req.Header().Get("Authorization"), "Bearer ")
			if token == "" || !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("the pool service needs the pool token (GOFASTAPI_POOL_TOKEN)"))
			}
			return next(ctx, req)
		}
	}
}
