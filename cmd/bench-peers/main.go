// Command bench-peers measures Bulkhead side by side with Portkey's
// gateway on the same machine, in one run (make bench-peers;
// internal/benchpeers).
//
//	bench-peers [--rates 100,200,...] [--duration 10s] [--targets direct,portkey,bulkhead] [--stream=true] [--out FILE]
//	bench-peers upstream --addr HOST:PORT   (the zero-latency upstream, run by the above)
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-mesh/bulkhead/internal/benchpeers"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "upstream" {
		fs := flag.NewFlagSet("upstream", flag.ExitOnError)
		addr := fs.String("addr", "127.0.0.1:0", "address to listen on")
		fs.Parse(os.Args[2:])
		if err := benchpeers.ServeUpstream(*addr); err != nil {
			fmt.Fprintln(os.Stderr, "upstream:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("bench-peers", flag.ContinueOnError)
	rates := fs.String("rates", "100,200,300,500,800,1200,1800", "the ladder of rates (requests/s), each run until a target no longer holds it")
	duration := fs.Duration("duration", 10*time.Second, "time at each rate")
	targets := fs.String("targets", "direct,portkey,bulkhead", "what to measure (direct is always measured first: the others are compared with it)")
	stream := fs.Bool("stream", true, "also measure streams (time to first token)")
	out := fs.String("out", "bench-peers.md", "where the table is written (also printed)")
	root := fs.String("root", ".", "the repository (bin/bulkhead, tools/portkey)")
	profileDir := fs.String("profile-dir", "", "also take CPU and allocation profiles of every Bulkhead service while it is loaded at --profile-rate (non-streaming), into this directory")
	profileRate := fs.Int("profile-rate", 300, "the rate the profiles are taken at")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var ladder []int
	for _, s := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench-peers: --rates: %q is not a positive integer\n", s)
			return 2
		}
		ladder = append(ladder, n)
	}
	want := map[string]bool{}
	for _, t := range strings.Split(*targets, ",") {
		switch t = strings.TrimSpace(t); t {
		case "direct", "portkey", "bulkhead":
			want[t] = true
		default:
			fmt.Fprintf(os.Stderr, "bench-peers: --targets: %q is not direct, portkey or bulkhead\n", t)
			return 2
		}
	}
	abs, _ := filepath.Abs(*root)
	logDir, err := os.MkdirTemp("", "bench-peers-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-peers:", err)
		return 1
	}
	// PostgreSQL, run as its own user when this runs as root, must reach
	// bulkhead up's state under it.
	if err := os.Chmod(logDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "bench-peers:", err)
		return 1
	}
	self, _ := os.Executable()
	say := func(f string, a ...any) { fmt.Printf("bench-peers: "+f+"\n", a...) }
	say("logs in %s", logDir)

	up, base, err := benchpeers.Upstream(self, logDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-peers:", err)
		return 1
	}
	defer up.Stop()
	say("zero-latency upstream at %s", base)

	modes := []bool{false}
	if *stream {
		modes = append(modes, true)
	}
	var results []benchpeers.Result
	ladderOf := func(t *benchpeers.Target) {
		say("%s: warming up (5 s at %d req/s, not measured)", t.Name, ladder[0])
		benchpeers.Warm(t, ladder[0], 5*time.Second)
		for _, s := range modes {
			for _, rate := range ladder {
				var profiled chan error
				if *profileDir != "" && t.Profiles != nil && !s && rate == *profileRate {
					profiled = make(chan error, 1)
					go func() {
						profiled <- benchpeers.Profile(t, *profileDir, max(1, int((*duration-2*time.Second)/time.Second)))
					}()
				}
				r := benchpeers.Measure(t, rate, *duration, s)
				if profiled != nil {
					if err := <-profiled; err != nil {
						say("profiles: %v", err)
					} else {
						say("profiles of %d processes at %d req/s in %s (go tool pprof -top FILE)", len(t.Profiles), rate, *profileDir)
					}
				}
				results = append(results, r)
				say("%-8s stream=%-5t %5d req/s: p50 %v p99 %v errors %d, %.2f CPU s per 1,000 requests", t.Name, s, rate, r.P50, r.P99, r.Errors, r.CPUPer1000)
				if !r.Held() && t.Name != "direct" {
					break
				}
			}
		}
	}
	ladderOf(up)
	if want["portkey"] {
		say("starting Portkey's gateway (tools/portkey)")
		pk, err := benchpeers.Portkey(abs, logDir, base, up)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-peers:", err)
			return 1
		}
		ladderOf(pk)
		pk.Stop()
	}
	if want["bulkhead"] {
		say("starting bulkhead up (every service its own process, mTLS), the model bench served by the upstream")
		bh, err := benchpeers.Bulkhead(abs, logDir, base, up, *profileDir != "")
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-peers:", err)
			return 1
		}
		ladderOf(bh)
		if err := bh.Stop(); err != nil {
			say("%v", err)
		}
	}

	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-peers:", err)
		return 1
	}
	defer f.Close()
	host, _ := os.Hostname()
	w := io.MultiWriter(os.Stdout, f)
	fmt.Fprintf(w, "bench-peers, %s, %s: %d cores (%s), %s; %s per rate, open loop (vegeta), everything on this machine\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), cpuModel(), memTotal(), *duration)
	benchpeers.Report(w, results)
	say("table written to %s", *out)
	return 0
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return fmt.Sprintf("%d GiB", (kb+(1<<19))>>20)
		}
	}
	return "unknown memory"
}
