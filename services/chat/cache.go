package chat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/chat/v1"
	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
)

// CacheTTL is how long a cached response lives, per data type: plain text
// completions, JSON-object completions (more often tied to changing data).
var CacheTTL = map[inferencev1.ResponseFormat]time.Duration{
	inferencev1.ResponseFormat_RESPONSE_FORMAT_UNSPECIFIED: time.Hour,
	inferencev1.ResponseFormat_RESPONSE_FORMAT_TEXT:        time.Hour,
	inferencev1.ResponseFormat_RESPONSE_FORMAT_JSON_OBJECT: 15 * time.Minute,
}

// responseCache keeps deterministic responses per tenant:
// chat:cache:ACCOUNT:MODEL:vVERSION:HASH. The model version in the key
// invalidates every entry of a model when it is re-registered.
type responseCache struct{ rdb *redis.Client }

type cachedResponse struct {
	// Pieces of the answer, after Reasoning's pieces of the chain of
	// thought.
	Pieces           []string `json:"p"`
	Reasoning        []string `json:"r,omitempty"`
	Finish           int32    `json:"f"`
	CompletionTokens int64    `json:"c"`
	ReasoningTokens  int64    `json:"rt,omitempty"`
	// Calls are the tool calls' deltas, after the answer.
	Calls []cachedCall `json:"t,omitempty"`
}

type cachedCall struct {
	Index     int32  `json:"i"`
	ID        string `json:"id,omitempty"`
	Type      string `json:"ty,omitempty"`
	Name      string `json:"n,omitempty"`
	Arguments string `json:"a,omitempty"`
}

func cacheKey(account string, m *modelsv1.Model, req *chatv1.CompleteRequest, s *inferencev1.Sampling) string {
	h := sha256.New()
	if suffix := req.Suffix; suffix != nil {
		h.Write([]byte("fim:" + strconv.Itoa(len(*suffix)) + ":" + *suffix))
	}
	write := func(m proto.Message) {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		h.Write([]byte(strconv.Itoa(len(b)) + ":"))
		h.Write(b)
	}
	for _, msg := range req.GetMessages() {
		write(msg)
	}
	// Tools change the reply as much as the messages do.
	h.Write([]byte("|tools"))
	for _, t := range req.GetTools() {
		write(t)
	}
	write(req.GetToolChoice())
	h.Write([]byte("|"))
	write(s)
	return "chat:cache:" + account + ":" + m.GetName() + ":v" + strconv.FormatInt(m.GetVersion(), 10) + ":" + hex.EncodeToString(h.Sum(nil))
}

func (c *responseCache) get(ctx context.Context, key string) (*cachedResponse, error) {
	b, err := c.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r cachedResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, nil
	}
	return &r, nil
}

func (c *responseCache) put(ctx context.Context, key string, r *cachedResponse, ttl time.Duration) error {
	b, _ := json.Marshal(r)
	return c.rdb.Set(ctx, key, b, ttl).Err()
}
