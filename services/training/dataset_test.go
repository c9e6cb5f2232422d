package training

import (
	"strings"
	"testing"
)

// Every way a line can be wrong is reported with its line number and the
// field at fault.
func TestParseDatasetNamesTheLineAndField(t *testing.T) {
	good := `{"messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi there"}]}`
	for _, c := range []struct{ content, want string }{
		{good + "\nnot json\n", "line 2: not a JSON object"},
		{good + "\n\n" + `{"messages": []}`, "line 3: messages: must not be empty"},
		{`{"prompt": "x"}`, "line 1: messages: is required"},
		{good + "\n" + `{"messages": [{"content": "x"}]}`, "line 2: messages[0].role: is required"},
		{`{"messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]}`, `line 1: messages[1].role: "robot" is not one of system, user, assistant`},
		{`{"messages": [{"role": "user"}]}`, "line 1: messages[0].content: is required"},
		{`{"messages": [{"role": "user", "content": 3}]}`, "line 1: messages[0].content: must be a string"},
		{`{"messages": [{"role": "user", "content": "  "}]}`, "line 1: messages[0].content: must not be empty"},
		{`{"messages": [{"role": "user", "content": "only a question"}]}`, "line 1: messages: has no assistant message to learn from"},
		{good + " {}", "line 1: more than one JSON value on the line"},
		{"\n\n", "the file has no examples"},
	} {
		_, err := parseDataset([]byte(c.content))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.content, err, c.want)
		}
	}
	exs, err := parseDataset([]byte(good + "\n" + good + "\n"))
	if err != nil || len(exs) != 2 {
		t.Fatalf("two good lines: %d examples, %v", len(exs), err)
	}
	// The reply is learnt after the turn before it, in one paragraph.
	if got := exs[0].text(); len(got) != 1 || got[0] != "hello hi there" {
		t.Fatalf("learnt %q", got)
	}
	if n := exs[0].tokens(); n != 4 {
		t.Fatalf("tokens %d, want 4 (hello, hi, there and the end of the paragraph)", n)
	}
}
