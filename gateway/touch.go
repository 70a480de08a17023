package gateway

import "time"

// touchEvery is how often runners with requests in flight are marked used.
// The pool reaps a runner whose app has gone idle: a long request, a
// streamed response or a WebSocket session is not idleness, however long
// it has been since it began. It is far below any sensible idle timeout.
const touchEvery = time.Second

// startTouching starts touchBusy once, with the gateway's first runner.
func (g *Gateway) startTouching() {
	g.touching.Do(func() {
		if g.enter() {
			go g.touchBusy()
		}
	})
}

// touchBusy touches, every touchEvery until Shutdown, each runner in
// service that has requests in flight.
func (g *Gateway) touchBusy() {
	defer g.bg.Done()
	t := time.NewTicker(touchEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			g.runners.touchBusy()
		case <-g.base.Done():
			return
		}
	}
}
