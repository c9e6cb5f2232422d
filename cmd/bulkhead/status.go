package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-mesh/bulkhead/control-plane/status"
)

func statusCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bulkhead status", flag.ContinueOnError)
	addr := fs.String("admin-address", "127.0.0.1:18001", "admin endpoint of the control plane")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+*addr+"/status", nil)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead status: %v\n", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead status: control plane at %s: %v (is it running? see --admin-address)\n", *addr, err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		fmt.Fprintf(stderr, "bulkhead status: %s: %s\n", resp.Status, strings.TrimSpace(string(body)))
		return 1
	}
	var rep status.Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		fmt.Fprintf(stderr, "bulkhead status: %v\n", err)
		return 1
	}
	printStatus(stdout, rep)
	return 0
}

func printStatus(w io.Writer, rep status.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAMESPACE/NAME\tACCEPTED\tPROGRAMMED\tMESSAGE")
	for _, o := range rep.Objects {
		acc, prog, msgs := "-", "-", []string{}
		for _, c := range o.Conditions {
			switch c.Type {
			case "Accepted":
				acc = c.Status
			case "Programmed":
				prog = c.Status
			}
			if c.Status != "True" && c.Message != "" {
				msgs = append(msgs, c.Type+": "+c.Message)
			}
		}
		fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s\t%s\n", o.Kind, o.Namespace, o.Name, acc, prog, strings.Join(msgs, "; "))
	}
	tw.Flush()
	if len(rep.Proxies) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PROXY\tNODES\tIN SYNC\tPROBLEM")
		for _, p := range rep.Proxies {
			problem := p.Rejected
			if problem == "" {
				problem = p.Pending
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", p.Proxy, len(p.Nodes), p.InSync, problem)
		}
		tw.Flush()
	}
	if len(rep.Problems) > 0 {
		fmt.Fprintf(w, "\n%d problem(s):\n", len(rep.Problems))
		for _, p := range rep.Problems {
			fmt.Fprintln(w, "  "+p)
		}
	}
}
