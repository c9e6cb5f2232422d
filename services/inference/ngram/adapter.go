package ngram

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Counts are n-gram counts by word: what a text teaches the model. A
// fine-tuned model is its base corpus plus the Counts that fine-tuning
// learnt from a dataset (an adapter: small, stored apart from the base,
// added to it by TrainWith).
type Counts struct {
	Tri map[[3]string]uint32
	Bi  map[[2]string]uint32
	Uni map[string]uint32
}

// NewCounts is an empty adapter.
func NewCounts() *Counts {
	return &Counts{Tri: map[[3]string]uint32{}, Bi: map[[2]string]uint32{}, Uni: map[string]uint32{}}
}

// Learn counts the words of text weight times (one paragraph: it ends
// the generation where it ends). It returns the tokens learnt from it.
func (c *Counts) Learn(text string, weight uint32) int {
	seq := words(text)
	if len(seq) > 0 && seq[len(seq)-1] != eos {
		seq = append(seq, eos)
	}
	for i, w := range seq {
		c.Uni[w] += weight
		if i >= 1 {
			c.Bi[[2]string{seq[i-1], w}] += weight
		}
		if i >= 2 {
			c.Tri[[3]string{seq[i-2], seq[i-1], w}] += weight
		}
	}
	return len(seq)
}

// Tokens counts the model's tokens in text, as Learn does.
func Tokens(text string) int {
	seq := words(text)
	if len(seq) > 0 && seq[len(seq)-1] != eos {
		return len(seq) + 1
	}
	return len(seq)
}

// Clone is a copy of c.
func (c *Counts) Clone() *Counts {
	out := NewCounts()
	for k, v := range c.Tri {
		out.Tri[k] = v
	}
	for k, v := range c.Bi {
		out.Bi[k] = v
	}
	for k, v := range c.Uni {
		out.Uni[k] = v
	}
	return out
}

// The encoding is gzip of one line per count, sorted (so that the same
// counts encode to the same bytes): "3\tw1\tw2\tw3\tn", "2\tw1\tw2\tn",
// "1\tw\tn". Words never hold a tab or a newline (the tokeniser's pieces
// are letters, digits, punctuation and the end-of-paragraph mark).
const encodingHeader = "bulkhead-ngram-adapter v1\n"

// MarshalBinary encodes the counts.
func (c *Counts) MarshalBinary() ([]byte, error) {
	lines := make([]string, 0, len(c.Tri)+len(c.Bi)+len(c.Uni))
	for k, n := range c.Tri {
		lines = append(lines, "3\t"+k[0]+"\t"+k[1]+"\t"+k[2]+"\t"+strconv.FormatUint(uint64(n), 10))
	}
	for k, n := range c.Bi {
		lines = append(lines, "2\t"+k[0]+"\t"+k[1]+"\t"+strconv.FormatUint(uint64(n), 10))
	}
	for w, n := range c.Uni {
		lines = append(lines, "1\t"+w+"\t"+strconv.FormatUint(uint64(n), 10))
	}
	sort.Strings(lines)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	io.WriteString(zw, encodingHeader)
	for _, l := range lines {
		io.WriteString(zw, l)
		io.WriteString(zw, "\n")
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DecodeCounts reads what MarshalBinary wrote.
func DecodeCounts(b []byte) (*Counts, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("adapter: %w", err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() || sc.Text()+"\n" != encodingHeader {
		return nil, fmt.Errorf("adapter: not a %q encoding", strings.TrimSpace(encodingHeader))
	}
	c := NewCounts()
	line := 1
	for sc.Scan() {
		line++
		f := strings.Split(sc.Text(), "\t")
		n, err := strconv.ParseUint(f[len(f)-1], 10, 32)
		if err != nil || len(f) < 3 || strconv.Itoa(len(f)-2) != f[0] {
			return nil, fmt.Errorf("adapter: line %d is not a count", line)
		}
		switch f[0] {
		case "3":
			c.Tri[[3]string{f[1], f[2], f[3]}] = uint32(n)
		case "2":
			c.Bi[[2]string{f[1], f[2]}] = uint32(n)
		case "1":
			c.Uni[f[1]] = uint32(n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("adapter: %w", err)
	}
	return c, nil
}
