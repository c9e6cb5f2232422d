package platform

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// ServeHTTP serves h on addr until the service stops, then shuts it down
// gracefully (requests in flight finish, bounded by DrainTimeout). It
// returns the bound address (addr may say port 0).
func (rt *Runtime) ServeHTTP(addr string, h http.Handler) (net.Addr, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: nil}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			rt.Log.Error("http server", "address", lis.Addr().String(), "error", err)
		}
	}()
	rt.OnStop(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), rt.Config.DrainTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			return srv.Close()
		}
		return nil
	})
	rt.mu.Lock()
	rt.httpAddr = append(rt.httpAddr, lis.Addr())
	rt.mu.Unlock()
	return lis.Addr(), nil
}
