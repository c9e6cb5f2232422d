package chat

import (
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/bulkhead-mesh/bulkhead/services/platform"
	chatv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/chat/v1"
	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
)

// toolsFor checks the request's tools against the model: a model whose
// engine cannot call tools refuses them (tool_choice "none" aside), and in
// thinking mode an assistant message that made tool calls must carry its
// chain of thought back, as DeepSeek V4 requires.
func toolsFor(req *chatv1.CompleteRequest, s *inferencev1.Sampling, m *modelsv1.Model) error {
	if len(req.GetTools()) > 0 && req.GetToolChoice().GetMode() != inferencev1.ToolChoice_MODE_NONE && !m.GetCallsTools() {
		return platform.InvalidField("tools", "model %s (engine %s) cannot call tools; tool_choice \"none\" is accepted, or use a model served by an upstream that can", m.GetName(), m.GetEngine())
	}
	if !s.GetThinking() {
		return nil
	}
	for i, msg := range req.GetMessages() {
		if len(msg.GetToolCalls()) > 0 && msg.GetReasoningContent() == "" {
			return platform.InvalidField(fmt.Sprintf("messages[%d].reasoning_content", i),
				"is required in thinking mode on an assistant message that made tool calls: pass back the reasoning_content of that reply")
		}
	}
	return nil
}

// toolName is what OpenAI and DeepSeek accept as a function name.
var toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// MaxTools bounds the tools of a request, as DeepSeek does.
const MaxTools = 128

// validateTools checks the tools, tool_choice and the tool turns of the
// conversation: every tool message answers a call an earlier assistant
// message made.
func validateTools(req *chatv1.CompleteRequest) error {
	tools := req.GetTools()
	if len(tools) > MaxTools {
		return platform.InvalidField("tools", "at most %d tools, got %d", MaxTools, len(tools))
	}
	names := map[string]bool{}
	for i, t := range tools {
		field := fmt.Sprintf("tools[%d]", i)
		if t.GetType() != "function" {
			return platform.InvalidField(field+".type", "%q is not function", t.GetType())
		}
		if !toolName.MatchString(t.GetName()) {
			return platform.InvalidField(field+".function.name", "%q must be 1 to 64 letters, digits, underscores or dashes", t.GetName())
		}
		if names[t.GetName()] {
			return platform.InvalidField(field+".function.name", "%q is defined twice", t.GetName())
		}
		names[t.GetName()] = true
		if p := t.GetParametersJson(); p != "" {
			var schema map[string]any
			if json.Unmarshal([]byte(p), &schema) != nil {
				return platform.InvalidField(field+".function.parameters", "must be a JSON Schema object")
			}
		}
	}
	switch c := req.GetToolChoice(); {
	case c.GetMode() == inferencev1.ToolChoice_MODE_UNSPECIFIED || c.GetMode() == inferencev1.ToolChoice_MODE_NONE:
	case len(tools) == 0:
		return platform.InvalidField("tool_choice", "needs tools to choose from")
	case c.GetMode() == inferencev1.ToolChoice_MODE_FUNCTION && !names[c.GetFunctionName()]:
		return platform.InvalidField("tool_choice.function.name", "%q is not one of the tools", c.GetFunctionName())
	}
	calls := map[string]bool{}
	for i, m := range req.GetMessages() {
		for j, tc := range m.GetToolCalls() {
			field := fmt.Sprintf("messages[%d].tool_calls[%d]", i, j)
			switch {
			case m.GetRole() != inferencev1.Role_ROLE_ASSISTANT:
				return platform.InvalidField(fmt.Sprintf("messages[%d].tool_calls", i), "only an assistant message makes tool calls")
			case tc.GetId() == "":
				return platform.InvalidField(field+".id", "is required")
			case tc.GetFunctionName() == "":
				return platform.InvalidField(field+".function.name", "is required")
			}
			calls[tc.GetId()] = true
		}
		if m.GetRole() == inferencev1.Role_ROLE_TOOL {
			switch id := m.GetToolCallId(); {
			case id == "":
				return platform.InvalidField(fmt.Sprintf("messages[%d].tool_call_id", i), "is required for a tool message")
			case !calls[id]:
				return platform.InvalidField(fmt.Sprintf("messages[%d].tool_call_id", i), "%q answers no tool call of an earlier assistant message", id)
			}
		}
	}
	return nil
}
