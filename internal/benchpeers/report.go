package benchpeers

import (
	"fmt"
	"io"
	"time"
)

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }

// Report writes the results as Markdown: per mode, a row per target and
// rate with what it adds over the direct path at the same rate, then the
// highest rate each target held.
func Report(w io.Writer, results []Result) {
	direct := map[[2]any]Result{}
	for _, r := range results {
		if r.Target == "direct" {
			direct[[2]any{r.Rate, r.Stream}] = r
		}
	}
	for _, stream := range []bool{false, true} {
		var rows []Result
		for _, r := range results {
			if r.Stream == stream {
				rows = append(rows, r)
			}
		}
		if len(rows) == 0 {
			continue
		}
		mode := "non-streaming"
		if stream {
			mode = "streaming"
		}
		fmt.Fprintf(w, "\n%s (latency in ms; added = over the upstream called directly at the same rate)\n\n", mode)
		if stream {
			fmt.Fprintln(w, "| target | req/s | p50 | p99 | max | added p50 | added p99 | TTFT p50 | TTFT p99 | TTFT added p99 | errors | CPU s / 1,000 req | RSS MiB |")
			fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
		} else {
			fmt.Fprintln(w, "| target | req/s | p50 | p99 | max | added p50 | added p99 | errors | CPU s / 1,000 req | RSS MiB |")
			fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
		}
		for _, r := range rows {
			d := direct[[2]any{r.Rate, r.Stream}]
			added := func(a, b time.Duration) string {
				if r.Target == "direct" || d.Requests == 0 {
					return "—"
				}
				return ms(a - b)
			}
			errs := fmt.Sprint(r.Errors)
			if r.Errors > 0 {
				errs = fmt.Sprintf("%d (%s)", r.Errors, r.FirstError)
			}
			if stream {
				ttft50, ttft99, ttftAdded := ms(r.TTFTP50), ms(r.TTFTP99), added(r.TTFTP99, d.TTFTP99)
				if r.TTFTP99 == 0 {
					// No stream delivered content (every request failed).
					ttft50, ttft99, ttftAdded = "—", "—", "—"
				}
				fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.2f | %d |\n", r.Target, r.Rate, ms(r.P50), ms(r.P99), ms(r.Max),
					added(r.P50, d.P50), added(r.P99, d.P99), ttft50, ttft99, ttftAdded, errs, r.CPUPer1000, r.RSS>>20)
			} else {
				fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %.2f | %d |\n", r.Target, r.Rate, ms(r.P50), ms(r.P99), ms(r.Max),
					added(r.P50, d.P50), added(r.P99, d.P99), errs, r.CPUPer1000, r.RSS>>20)
			}
		}
		fmt.Fprintln(w)
		held := map[string]int{}
		var order []string
		for _, r := range rows {
			if _, ok := held[r.Target]; !ok {
				order = append(order, r.Target)
				held[r.Target] = 0
			}
			if r.Held() && r.Rate > held[r.Target] {
				held[r.Target] = r.Rate
			}
		}
		for _, t := range order {
			fmt.Fprintf(w, "- %s: highest rate held (p99 < 50 ms, no errors): %d req/s\n", t, held[t])
		}
	}
}
