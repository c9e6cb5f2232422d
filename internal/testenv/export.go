package testenv

import (
	"context"
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
