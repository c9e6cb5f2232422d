package components

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"syscall"
	"time"
)

// Process is a child process run the way the test servers are: its own
// process group, killed if this process dies, output appended to a log.
// `bulkhead up` runs the platform's services with it.
type Process struct{ p *process }

// StartProcess starts bin with args (env nil: this process's environment).
func StartProcess(name, bin string, args, env []string, logPath string) (*Process, error) {
	p, err := startProcess(name, bin, args, env, logPath, nil)
	if err != nil {
		return nil, err
	}
	return &Process{p: p}, nil
}

// WaitReady polls ready until it succeeds, the process exits (the error
// then carries the end of its log), or timeout.
func (p *Process) WaitReady(ctx context.Context, timeout time.Duration, ready func(context.Context) error) error {
	return p.p.waitReady(ctx, timeout, ready)
}

// Stop sends SIGTERM and waits up to grace, then kills.
func (p *Process) Stop(grace time.Duration) error { return p.p.stop(syscall.SIGTERM, grace) }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.p.done }

// LogTail is the end of its log.
func (p *Process) LogTail() string { return p.p.logTail() }

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) { return freePort() }

// QuietPort is a free TCP port on 127.0.0.1 below Linux's ephemeral range
// (32768-60999), for an address that must be chosen before the server that
// binds it starts: the kernel does not hand it to outgoing connections or
// to other tests' servers (which take ephemeral ports) meanwhile.
func QuietPort() (int, error) {
	for range 100 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			l.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port in 20000-31999")
}
