// Package proto_test checks the service APIs as their callers see them: the
// methods and streaming shapes DESIGN.md §3 and §5 rely on, and that the
// generated code carries a streaming call over real gRPC on loopback.
package proto_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	authv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/auth/v1"
	chatv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/chat/v1"
	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
	trainingv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/training/v1"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
	webhooksv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/webhooks/v1"
)

// The methods of each service; a "stream " prefix marks server streaming.
// Changing an API means changing this table, in review.
var wantServices = map[protoreflect.FileDescriptor]map[string][]string{
	authv1.File_bulkhead_auth_v1_auth_proto: {
		"AuthService": {"CreateKey", "GetSigningKeys", "IssueToken", "ListKeys", "RevokeKey", "VerifyToken"},
	},
	usersv1.File_bulkhead_users_v1_users_proto: {
		"UsersService": {"Commit", "CreateAccount", "GetAccount", "GetUsage", "Refund", "Reserve", "UpdateAccount"},
	},
	chatv1.File_bulkhead_chat_v1_chat_proto: {
		"ChatService": {"stream Complete"},
	},
	modelsv1.File_bulkhead_models_v1_models_proto: {
		"ModelsService": {"GetModel", "ListModelConfigs", "ListModels", "RegisterModel", "Resolve", "SetModelState"},
	},
	inferencev1.File_bulkhead_inference_v1_inference_proto: {
		"InferenceService": {"CountTokens", "stream Generate"},
	},
	trainingv1.File_bulkhead_training_v1_training_proto: {
		"TrainingService": {"CancelJob", "CreateFile", "CreateJob", "GetAdapter", "GetFile", "GetJob", "ListCheckpoints", "ListJobEvents", "ListJobs"},
	},
	webhooksv1.File_bulkhead_webhooks_v1_webhooks_proto: {
		"WebhooksService": {"CreateEndpoint", "DeleteEndpoint", "ListDeadLetters", "ListEndpoints"},
	},
}

func TestServiceShapes(t *testing.T) {
	for fd, services := range wantServices {
		if got := fd.Services().Len(); got != len(services) {
			t.Errorf("%s: %d services; want %d", fd.Path(), got, len(services))
		}
		for name, want := range services {
			sd := fd.Services().ByName(protoreflect.Name(name))
			if sd == nil {
				t.Errorf("%s: no service %s", fd.Path(), name)
				continue
			}
			var got []string
			for i := 0; i < sd.Methods().Len(); i++ {
				m := sd.Methods().Get(i)
				if m.IsStreamingClient() {
					t.Errorf("%s: client streaming; no API here takes a client stream", m.FullName())
				}
				n := string(m.Name())
				if m.IsStreamingServer() {
					n = "stream " + n
				}
				got = append(got, n)
			}
			sort.Slice(got, func(i, j int) bool {
				return strings.TrimPrefix(got[i], "stream ") < strings.TrimPrefix(got[j], "stream ")
			})
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s methods = %v; want %v", sd.FullName(), got, want)
			}
		}
	}
}

// The chat request carries every field of the OpenAI/DeepSeek request body
// that the api service maps (issue 4), with presence where "unset" differs
// from zero.
func TestChatRequestCarriesOpenAIFields(t *testing.T) {
	req := (&chatv1.CompleteRequest{}).ProtoReflect().Descriptor()
	for _, f := range []string{"model", "messages", "sampling", "user", "request_id", "cache_opt_in"} {
		if req.Fields().ByName(protoreflect.Name(f)) == nil {
			t.Errorf("CompleteRequest has no field %q", f)
		}
	}
	sampling := (&inferencev1.Sampling{}).ProtoReflect().Descriptor()
	for _, f := range []string{"max_tokens", "temperature", "top_p", "seed"} {
		fd := sampling.Fields().ByName(protoreflect.Name(f))
		if fd == nil || !fd.HasPresence() {
			t.Errorf("Sampling.%s must exist with presence (unset means the model's default)", f)
		}
	}
	if fd := sampling.Fields().ByName("stop"); fd == nil || !fd.IsList() {
		t.Error("Sampling.stop must be a list (OpenAI accepts up to 16 stop sequences)")
	}
	msg := (&inferencev1.Message{}).ProtoReflect().Descriptor()
	for _, f := range []string{"role", "content", "name", "tool_call_id", "tool_calls"} {
		if msg.Fields().ByName(protoreflect.Name(f)) == nil {
			t.Errorf("Message has no field %q", f)
		}
	}
	usage := (&chatv1.Usage{}).ProtoReflect().Descriptor()
	for _, f := range []string{"prompt_tokens", "completion_tokens", "total_tokens", "prompt_cache_hit_tokens", "prompt_cache_miss_tokens"} {
		if usage.Fields().ByName(protoreflect.Name(f)) == nil {
			t.Errorf("Usage has no field %q (DeepSeek usage object)", f)
		}
	}
}

// chatServer streams a fixed completion and reports when the client cancels.
type chatServer struct {
	chatv1.UnimplementedChatServiceServer
	cancelled chan struct{}
}

var _ chatv1.ChatServiceServer = (*chatServer)(nil)

func (s *chatServer) Complete(req *chatv1.CompleteRequest, stream grpc.ServerStreamingServer[chatv1.CompleteResponse]) error {
	if req.GetModel() == "" {
		return status.Error(codes.InvalidArgument, "model is required")
	}
	events := []*chatv1.CompleteResponse{
		{Event: &chatv1.CompleteResponse_Started_{Started: &chatv1.CompleteResponse_Started{Id: "chatcmpl-1", Model: req.GetModel()}}},
		{Event: &chatv1.CompleteResponse_Delta_{Delta: &chatv1.CompleteResponse_Delta{Content: "Hel"}}},
		{Event: &chatv1.CompleteResponse_Delta_{Delta: &chatv1.CompleteResponse_Delta{Content: "lo"}}},
		{Event: &chatv1.CompleteResponse_Finished_{Finished: &chatv1.CompleteResponse_Finished{FinishReason: inferencev1.FinishReason_FINISH_REASON_STOP}}},
		{Event: &chatv1.CompleteResponse_Usage{Usage: &chatv1.Usage{PromptTokens: 3, CompletionTokens: 2, TotalTokens: 5, PromptCacheMissTokens: 3}}},
	}
	if req.GetUser() == "slow" {
		// Keep the stream open until the client goes away.
		if err := stream.Send(events[0]); err != nil {
			return err
		}
		<-stream.Context().Done()
		close(s.cancelled)
		return stream.Context().Err()
	}
	for _, e := range events {
		if err := stream.Send(e); err != nil {
			return err
		}
	}
	return nil
}

func TestChatStreamOverLoopback(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	impl := &chatServer{cancelled: make(chan struct{})}
	chatv1.RegisterChatServiceServer(srv, impl)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := chatv1.NewChatServiceClient(conn)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	temp := 0.0
	stream, err := client.Complete(ctx, &chatv1.CompleteRequest{
		Model:    "deepseek-chat",
		Messages: []*inferencev1.Message{{Role: inferencev1.Role_ROLE_USER, Content: "hi"}},
		Sampling: &inferencev1.Sampling{Temperature: &temp},
	})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	var kinds []string
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		switch e := resp.GetEvent().(type) {
		case *chatv1.CompleteResponse_Started_:
			kinds = append(kinds, "started")
		case *chatv1.CompleteResponse_Delta_:
			kinds = append(kinds, "delta")
			text.WriteString(e.Delta.GetContent())
		case *chatv1.CompleteResponse_Finished_:
			kinds = append(kinds, "finished")
		case *chatv1.CompleteResponse_Usage:
			kinds = append(kinds, "usage")
			u := e.Usage
			if u.GetPromptCacheHitTokens()+u.GetPromptCacheMissTokens() != u.GetPromptTokens() {
				t.Errorf("usage %v: hit + miss != prompt", u)
			}
		}
	}
	if got := strings.Join(kinds, ","); got != "started,delta,delta,finished,usage" {
		t.Fatalf("events = %s", got)
	}
	if text.String() != "Hello" {
		t.Fatalf("text = %q; want Hello", text.String())
	}

	// An explicit zero temperature survives the wire (presence), so chat can
	// tell "deterministic" from "unset".
	b, err := proto.Marshal(&inferencev1.Sampling{Temperature: &temp})
	if err != nil {
		t.Fatal(err)
	}
	var back inferencev1.Sampling
	if err := proto.Unmarshal(b, &back); err != nil || back.Temperature == nil || back.GetTemperature() != 0 {
		t.Fatalf("temperature 0 lost on the wire: %v, %v", back.Temperature, err)
	}

	// A bad request gets the status the server chose.
	bad, err := client.Complete(ctx, &chatv1.CompleteRequest{})
	if err == nil {
		_, err = bad.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("empty model: %v; want InvalidArgument", err)
	}

	// A client that goes away cancels the server's work.
	slowCtx, slowCancel := context.WithCancel(ctx)
	slow, err := client.Complete(slowCtx, &chatv1.CompleteRequest{Model: "deepseek-chat", User: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := slow.Recv(); err != nil {
		t.Fatalf("first event: %v", err)
	}
	slowCancel()
	select {
	case <-impl.cancelled:
	case <-ctx.Done():
		t.Fatal("server did not see the client's cancellation")
	}
}
