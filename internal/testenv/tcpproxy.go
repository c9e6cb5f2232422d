package testenv

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// TCPProxy forwards to a real server and can play a network partition:
// while down it refuses every connection and cuts the open ones.
type TCPProxy struct {
	target string
	lis    net.Listener
	down   atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

// StartTCPProxy listens on a free loopback port, forwarding to target
// (host:port), until the test ends.
func StartTCPProxy(t testing.TB, target string) *TCPProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &TCPProxy{target: target, lis: lis}
	t.Cleanup(func() { lis.Close(); p.SetDown(true) })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			if p.down.Load() {
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

// Addr is where clients connect (host:port).
func (p *TCPProxy) Addr() string { return p.lis.Addr().String() }

// SetDown cuts (true) or restores (false) the link.
func (p *TCPProxy) SetDown(down bool) {
	p.down.Store(down)
	if down {
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
		p.mu.Unlock()
	}
}
