// Command bulkhead is the Bulkhead CLI.
//
//	bulkhead up [--state-dir DIR]   run the platform locally (make run)
//
// More commands (translate, validate, status, chat) arrive with the control
// plane and the services; DESIGN.md §8 lists them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/bulkhead-mesh/bulkhead/internal/localrun"
)

const usage = `usage: bulkhead <command> [flags]

commands:
  up    run the platform locally, state under .bulkhead/ (Ctrl-C stops it)

run 'bulkhead <command> -h' for the flags of a command
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "up":
		return up(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "bulkhead: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func up(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bulkhead up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", ".bulkhead", "directory for all local state (databases, logs, credentials)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bulkhead up: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := localrun.Run(ctx, localrun.Options{StateDir: *stateDir, Out: stdout}); err != nil {
		fmt.Fprintf(stderr, "bulkhead up: %v\n", err)
		return 1
	}
	return 0
}
