// Command bulkhead is the Bulkhead CLI.
//
//	bulkhead up [--state-dir DIR]                            run the platform locally (make run)
//	bulkhead translate -f DIR [--node ROLE/NAME] [-o yaml|json]  the xDS a proxy would get, offline
//	bulkhead validate -f DIR                                 every problem, with file, object and field
//	bulkhead status [--admin-address HOST:PORT]              Accepted/Programmed of every object
//	bulkhead bootstrap --role ROLE --name NAME               a proxy's bootstrap (grpc-go JSON or Envoy YAML)
//	bulkhead chat [--model M] TEXT                           stream a reply from the running platform
//	bulkhead models list|get NAME|apply -f FILE|delete NAME  the Model objects of the running platform
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `usage: bulkhead <command> [flags]

commands:
  up         run the platform locally, state under .bulkhead/ (Ctrl-C stops it)
  translate  print the xDS configuration a proxy would get from a directory, offline
  validate   check a directory of resources; list every problem with file, object and field
  status     show Accepted and Programmed for every object of a running control plane
  bootstrap  print the bootstrap of a proxy: grpc-go JSON (role grpc) or Envoy YAML
  chat       send TEXT to the running platform's API and stream the reply
  models     list, show, apply or delete the Model objects of the running platform

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
	case "translate":
		return translateCmd(args[1:], stdout, stderr)
	case "validate":
		return validateCmd(args[1:], stdout, stderr)
	case "status":
		return statusCmd(args[1:], stdout, stderr)
	case "bootstrap":
		return bootstrapCmd(args[1:], stdout, stderr)
	case "chat":
		return chatCmd(args[1:], stdout, stderr)
	case "models":
		return modelsCmd(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "bulkhead: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
