package benchpeers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/provision"
	authv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/auth/v1"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
)

// Target is something the load is sent to: its chat-completions URL, the
// headers a request needs, and the processes whose CPU and memory it costs.
type Target struct {
	Name   string
	URL    string
	Header http.Header
	// Pids are the target's processes now (children included).
	Pids func() []int
	Stop func() error
	// Profiles are the metrics addresses serving Go's profiles, by
	// process (Bulkhead started with profiling).
	Profiles map[string]string
}

// process is a child process with its log.
type process struct {
	cmd *exec.Cmd
	log string
}

func start(name, dir, logDir string, env []string, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, f, f
	cmd.Env = append(os.Environ(), env...)
	// Its own process group: stopped with everything it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() { cmd.Wait(); f.Close() }()
	return &process{cmd: cmd, log: logPath}, nil
}

// stop sends SIGINT to the group and waits, then kills it.
func (p *process) stop(within time.Duration) error {
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGINT)
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	return fmt.Errorf("%s did not stop within %s; killed", filepath.Base(p.cmd.Path), within)
}

func (p *process) tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}

// waitFor polls ready until it succeeds or within passes.
func waitFor(within time.Duration, what string, p *process, ready func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if p != nil && p.cmd.ProcessState != nil {
			return fmt.Errorf("%s: the process exited; its log:\n%s", what, p.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not ready within %s: %v", what, within, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func httpOK(url string, header http.Header) error {
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, body)
	}
	return nil
}

// Upstream runs the zero-latency upstream as its own process (this
// executable's "upstream" command) and is the "direct" target.
func Upstream(self, logDir string) (*Target, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	p, err := start("upstream", "", logDir, nil, self, "upstream", "--addr", addr)
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr + "/v1"
	if err := waitFor(10*time.Second, "upstream", p, func() error { return httpOK(base+"/models", nil) }); err != nil {
		p.stop(time.Second)
		return nil, "", err
	}
	pid := p.cmd.Process.Pid
	return &Target{Name: "direct", URL: base + "/chat/completions", Header: http.Header{},
		Pids: func() []int { return []int{pid} }, Stop: func() error { return p.stop(5 * time.Second) }}, base, nil
}

// Portkey runs Portkey's gateway (tools/portkey, the machine's Node) in
// front of the upstream at base; its CPU is Node's and the upstream's.
func Portkey(root, logDir, base string, upstream *Target) (*Target, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	entry := filepath.Join(root, "tools", "portkey", "node_modules", "@portkey-ai", "gateway", "build", "start-server.js")
	if _, err := os.Stat(entry); err != nil {
		return nil, fmt.Errorf("portkey: %s is missing: run tools/portkey/install.sh", entry)
	}
	p, err := start("portkey", "", logDir, nil, "node", entry, "--port="+port, "--headless")
	if err != nil {
		return nil, err
	}
	url := "http://" + addr + "/v1/chat/completions"
	h := http.Header{}
	h.Set("x-portkey-provider", "openai")
	h.Set("x-portkey-custom-host", base)
	h.Set("Authorization", "Bearer sk-bench")
	t := &Target{Name: "portkey", URL: url, Header: h,
		Pids: func() []int { return append(tree(p.cmd.Process.Pid), upstream.Pids()...) }, Stop: func() error { return p.stop(10 * time.Second) }}
	if err := waitFor(30*time.Second, "portkey", p, func() error { return post(t, false) }); err != nil {
		p.stop(time.Second)
		return nil, err
	}
	return t, nil
}

// Bulkhead runs `bulkhead up` (every service its own process, mTLS on
// every hop) with the model "bench" served by the upstream at base, and an
// account of the benchmark's own (no per-minute limits to hit).
func Bulkhead(root, logDir, base string, upstream *Target, profiles bool) (*Target, error) {
	state := filepath.Join(logDir, "bulkhead-state")
	addrs := make([]string, 3)
	for i := range addrs {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	api, xds, admin := addrs[0], addrs[1], addrs[2]
	args := []string{"up", "--state-dir", state, "--api-address", api, "--xds-address", xds, "--admin-address", admin, "--token-interval", "0", "--upstream", "bench=" + base}
	if profiles {
		args = append(args, "--pprof")
	}
	p, err := start("bulkhead-up", root, logDir, nil, filepath.Join(root, "bin", "bulkhead"), args...)
	if err != nil {
		return nil, err
	}
	stop := func() error { return p.stop(60 * time.Second) }
	ready := func() error {
		b, _ := os.ReadFile(p.log)
		if !strings.Contains(string(b), "press Ctrl-C to stop") {
			return errors.New("bulkhead up is still starting")
		}
		return nil
	}
	if err := waitFor(5*time.Minute, "bulkhead up", p, ready); err != nil {
		stop()
		return nil, err
	}
	key, err := benchKey(state, xds)
	if err != nil {
		stop()
		return nil, err
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+key)
	t := &Target{Name: "bulkhead", URL: "http://" + api + "/v1/chat/completions", Header: h,
		Pids: func() []int { return append(tree(p.cmd.Process.Pid), upstream.Pids()...) }, Stop: stop}
	if profiles {
		t.Profiles = metricsAddresses(p.log)
	}
	// The Model object is read and its upstream probed within seconds.
	if err := waitFor(time.Minute, "bulkhead's model bench", p, func() error { return post(t, false) }); err != nil {
		stop()
		return nil, err
	}
	return t, nil
}

// metricsRE finds a service process and its metrics address in bulkhead
// up's report ("  chat-1  starting ... (metrics http://ADDR/metrics, ...").
var metricsRE = regexp.MustCompile(`^\s+(\S+-\d+)\s.*\(metrics http://([^/]+)/metrics`)

func metricsAddresses(log string) map[string]string {
	b, _ := os.ReadFile(log)
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if m := metricsRE.FindStringSubmatch(l); m != nil {
			out[m[1]] = m[2]
		}
	}
	return out
}

// benchKey makes an enterprise account without per-minute limits and a
// key of it, as the operator.
func benchKey(state, xds string) (string, error) {
	certs := pki.CertFilesIn(filepath.Join(state, "secrets", "operator"))
	op := provision.Operator(xds, fmt.Sprintf("bench-peers-%d", os.Getpid()), certs, true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ucc, err := op.Dial("users")
	if err != nil {
		return "", err
	}
	defer ucc.Close()
	acc, err := op.Dial("auth")
	if err != nil {
		return "", err
	}
	defer acc.Close()
	a, err := usersv1.NewUsersServiceClient(ucc).CreateAccount(ctx, &usersv1.CreateAccountRequest{Name: "bench-peers", Tier: "enterprise",
		BalanceMicros: 1 << 50, Limits: &usersv1.Limits{MaxConcurrentRequests: 1 << 20, TokensPerMinute: 1 << 50, RequestsPerMinute: 1 << 40}}, grpc.WaitForReady(true))
	if err != nil {
		return "", fmt.Errorf("bench account: %w", err)
	}
	k, err := authv1.NewAuthServiceClient(acc).CreateKey(ctx, &authv1.CreateKeyRequest{AccountId: a.Account.Id, Name: "bench-peers"}, grpc.WaitForReady(true))
	if err != nil {
		return "", fmt.Errorf("bench key: %w", err)
	}
	return k.Secret, nil
}
