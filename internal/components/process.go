package components

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// process is a server started as a child of this process. It runs in its own
// process group (Ctrl-C in a terminal reaches the runner, which stops the
// children in order) and receives SIGKILL if this process dies first, so a
// crashed test never leaves a server behind.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{}
	waitErr error
}

// startProcess starts bin with args, its output appended to logPath. cred, when
// not nil, runs it as another user (PostgreSQL refuses to run as root).
func startProcess(name, bin string, args []string, env []string, logPath string, cred *syscall.Credential) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if env != nil {
		cmd.Env = env
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
		Credential: cred,
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("%s: start %s: %w", name, bin, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, logFile: logFile, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM (or sig) to the process group and waits up to grace,
// then kills it.
func (p *process) stop(sig syscall.Signal, grace time.Duration) error {
	if p.exited() {
		return nil
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("%s did not stop within %s after %s; killed", p.name, grace, sig)
}

// logTail returns the last lines of the process log, for error messages.
func (p *process) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// failure builds the error for a server that did not come up, with the end
// of its log.
func (p *process) failure(what string, err error) error {
	state := "still running"
	if p.exited() {
		state = fmt.Sprintf("exited: %v", p.waitErr)
	}
	return fmt.Errorf("%s %s (%s): %w\n--- last lines of %s ---\n%s", p.name, what, state, err, p.logPath, p.logTail())
}

// waitReady polls ready until it succeeds, the process exits, or timeout.
func (p *process) waitReady(ctx context.Context, timeout time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		last = ready(attempt)
		cancelAttempt()
		if last == nil {
			return nil
		}
		select {
		case <-p.done:
			return p.failure("exited before it was ready", last)
		case <-ctx.Done():
			return p.failure(fmt.Sprintf("not ready after %s", timeout), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// addrInUse tells whether a failed start was a lost race for a free port
// (another package took it between freePort and the server's bind).
func (p *process) addrInUse() bool {
	b, _ := os.ReadFile(p.logPath)
	return bytes.Contains(bytes.ToLower(b), []byte("address already in use"))
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startAttempts is how many fresh ports a server start tries when it loses
// the race for one.
const startAttempts = 3

// errPortTaken marks a start that failed because its port was taken.
var errPortTaken = errors.New("port taken")

// startOnPort calls start with port, or with a fresh free port when port is
// 0, trying again with another one when the port was taken meanwhile.
func startOnPort(port int, start func(port int) error) error {
	for attempt := 1; ; attempt++ {
		p := port
		if p == 0 {
			var err error
			if p, err = freePort(); err != nil {
				return err
			}
		}
		err := start(p)
		if err == nil || !errors.Is(err, errPortTaken) || port != 0 || attempt == startAttempts {
			return err
		}
	}
}

// stateDir returns dir, created, or a new temporary directory (temp true)
// that Close removes. Temporary directories live directly under the system
// temp dir, not t.TempDir, whose parents are private to the test's user.
func stateDir(dir, name string) (path string, temp bool, err error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "bulkhead-"+name+"-")
		if err != nil {
			return "", false, fmt.Errorf("%s: %w", name, err)
		}
		return d, true, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("%s: %w", name, err)
	}
	return dir, false, nil
}

// startIn gives a server its state directory (see stateDir) and starts it
// on a port (see startOnPort); a failed start removes a temporary
// directory. setDir records the directory before start runs.
func startIn(dir, name string, port int, setDir func(dir string, temp bool), start func(port int) error) error {
	path, temp, err := stateDir(dir, name)
	if err != nil {
		return err
	}
	setDir(path, temp)
	if err := startOnPort(port, start); err != nil {
		if temp {
			os.RemoveAll(path)
		}
		return err
	}
	return nil
}

// stopAfterFailedStart stops a server that did not become ready, marking
// the error errPortTaken when the reason was a lost race for the port.
func stopAfterFailedStart(p *process, sig syscall.Signal, err error) error {
	inUse := p.addrInUse()
	_ = p.stop(sig, 5*time.Second)
	if inUse {
		return fmt.Errorf("%w: %w", errPortTaken, err)
	}
	return err
}

// stopServer stops a server's process (if started) with sig, waiting up to
// grace, then removes its directory when it was a temporary one.
func stopServer(p *process, sig syscall.Signal, grace time.Duration, dir string, temp bool) error {
	var err error
	if p != nil {
		err = p.stop(sig, grace)
	}
	if temp {
		err = errors.Join(err, os.RemoveAll(dir))
	}
	return err
}
