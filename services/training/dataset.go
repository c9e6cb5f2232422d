package training

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/bulkhead-mesh/bulkhead/services/inference/ngram"
)

// example is one training conversation: what the model learns is the
// assistant's replies, each in the context of the turns before it.
type example struct {
	turns []turn
}

type turn struct {
	role, content string
}

// learnt are the (context, reply) pairs of an example: every assistant
// message, after the text that came before it.
func (e example) learnt() [][2]string {
	var out [][2]string
	var ctx []string
	for _, t := range e.turns {
		if t.role == "assistant" {
			out = append(out, [2]string{strings.Join(ctx, "\n"), t.content})
		}
		ctx = append(ctx, t.content)
	}
	return out
}

// text is what one example teaches, as one paragraph per reply: the last
// turn before the reply runs into it, so that the model, started on a
// prompt's last words, carries on into the reply.
func (e example) text() []string {
	var out []string
	for _, p := range e.learnt() {
		prev := p[0]
		if i := strings.LastIndexByte(prev, '\n'); i >= 0 {
			prev = prev[i+1:]
		}
		out = append(out, flatten(prev)+" "+flatten(p[1]))
	}
	return out
}

// flatten keeps a message in one paragraph.
func flatten(s string) string { return strings.Join(strings.Fields(s), " ") }

// tokens is what training on the example once counts (and costs).
func (e example) tokens() int64 {
	var n int64
	for _, t := range e.text() {
		n += int64(ngram.Tokens(t))
	}
	return n
}

// DatasetTokens is what training on a file once counts (and costs): the
// tokens of each reply and of the turn it follows.
func DatasetTokens(content []byte) (int64, error) {
	exs, err := parseDataset(content)
	var n int64
	for _, e := range exs {
		n += e.tokens()
	}
	return n, err
}

// datasetError is a problem with a file, at a line.
type datasetError struct {
	line int
	msg  string
}

func (e *datasetError) Error() string {
	if e.line == 0 {
		return e.msg
	}
	return fmt.Sprintf("line %d: %s", e.line, e.msg)
}

// MaxExamples bounds a training file.
const MaxExamples = 50_000

// parseDataset reads a fine-tuning file in OpenAI's chat format: one JSON
// object per line, {"messages": [{"role": ..., "content": ...}, ...]},
// with at least one assistant message each. The first problem found is
// reported with its line number.
func parseDataset(content []byte) ([]example, error) {
	var out []example
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 64<<10), len(content)+1)
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		ex, err := parseExample(raw)
		if err != nil {
			return nil, &datasetError{line: line, msg: err.Error()}
		}
		out = append(out, ex)
		if len(out) > MaxExamples {
			return nil, &datasetError{line: line, msg: fmt.Sprintf("more than %d examples", MaxExamples)}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &datasetError{line: line + 1, msg: err.Error()}
	}
	if len(out) == 0 {
		return nil, &datasetError{msg: "the file has no examples (one JSON object per line, each with \"messages\")"}
	}
	return out, nil
}

var roles = map[string]bool{"system": true, "user": true, "assistant": true}

func parseExample(raw []byte) (example, error) {
	var v struct {
		Messages *[]struct {
			Role    *string          `json:"role"`
			Content *json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&v); err != nil {
		return example{}, fmt.Errorf("not a JSON object: %v", err)
	}
	if dec.More() {
		return example{}, fmt.Errorf("more than one JSON value on the line")
	}
	if v.Messages == nil {
		return example{}, fmt.Errorf("messages: is required")
	}
	if len(*v.Messages) == 0 {
		return example{}, fmt.Errorf("messages: must not be empty")
	}
	var ex example
	assistant := false
	for i, m := range *v.Messages {
		switch {
		case m.Role == nil:
			return example{}, fmt.Errorf("messages[%d].role: is required", i)
		case !roles[*m.Role]:
			return example{}, fmt.Errorf("messages[%d].role: %q is not one of system, user, assistant", i, *m.Role)
		case m.Content == nil:
			return example{}, fmt.Errorf("messages[%d].content: is required", i)
		}
		var content string
		if err := json.Unmarshal(*m.Content, &content); err != nil {
			return example{}, fmt.Errorf("messages[%d].content: must be a string", i)
		}
		if strings.TrimSpace(content) == "" {
			return example{}, fmt.Errorf("messages[%d].content: must not be empty", i)
		}
		assistant = assistant || *m.Role == "assistant"
		ex.turns = append(ex.turns, turn{role: *m.Role, content: content})
	}
	if !assistant {
		return example{}, fmt.Errorf("messages: has no assistant message to learn from")
	}
	return ex, nil
}
