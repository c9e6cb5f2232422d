// Command chat is the chat orchestration service (services/chat).
package main

import (
	"github.com/bulkhead-mesh/bulkhead/services/chat"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
)

func main() {
	var o chat.Options
	platform.Main("chat", o.Flags, chat.Setup(&o))
}
