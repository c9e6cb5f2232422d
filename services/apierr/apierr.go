// Package apierr is the public API's error: the OpenAI JSON shape
// {"error":{"message","type","param","code"}} with DeepSeek's status codes,
// written by the api service and by auth's ext_authz denials, and mapped
// from the gRPC status the services return.
package apierr

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bulkhead-mesh/bulkhead/services/platform"
)

// Error is one API error.
type Error struct {
	Status     int
	Message    string
	Type       string
	Param      string // "" is written as null
	Code       string
	RetryAfter time.Duration
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Body is the JSON body.
func (e *Error) Body() []byte {
	var param *string
	if e.Param != "" {
		param = &e.Param
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"message": e.Message, "type": e.Type, "param": param, "code": e.Code,
	}})
	return b
}

// RetryAfterSeconds is the Retry-After header value ("" when none).
func (e *Error) RetryAfterSeconds() string {
	if e.RetryAfter <= 0 {
		return ""
	}
	return strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds())))
}

// Write sends the error as the response.
func (e *Error) Write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if s := e.RetryAfterSeconds(); s != "" {
		h.Set("Retry-After", s)
	}
	w.WriteHeader(e.Status)
	w.Write(e.Body())
}

// MessageOf returns the message of an error body in the API's shape, or
// the body itself, trimmed, when it is not one (a proxy's plain text).
func MessageOf(body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		return e.Error.Message
	}
	return strings.TrimSpace(string(body))
}

// Constructors for the errors of the contract.

func Malformed(msg string) *Error {
	return &Error{Status: 400, Type: "invalid_request_error", Code: "invalid_request_body", Message: msg}
}

func Unauthorized(msg string) *Error {
	return &Error{Status: 401, Type: "authentication_error", Code: "invalid_api_key", Message: msg}
}

func Forbidden(msg string) *Error {
	return &Error{Status: 403, Type: "permission_error", Code: "permission_denied", Message: msg}
}

func NotFound(msg string) *Error {
	return &Error{Status: 404, Type: "invalid_request_error", Code: "not_found", Message: msg}
}

func InsufficientBalance(msg string) *Error {
	return &Error{Status: 402, Type: "invalid_request_error", Code: "insufficient_balance", Message: msg}
}

func InvalidParam(param, msg string) *Error {
	return &Error{Status: 422, Type: "invalid_request_error", Code: "invalid_parameter", Param: param, Message: msg}
}

func RateLimited(code, msg string, retryAfter time.Duration) *Error {
	return &Error{Status: 429, Type: "rate_limit_error", Code: code, Message: msg, RetryAfter: max(retryAfter, time.Second)}
}

func Overloaded(msg string, retryAfter time.Duration) *Error {
	return &Error{Status: 503, Type: "server_error", Code: "overloaded", Message: msg, RetryAfter: max(retryAfter, time.Second)}
}

func Internal(msg string) *Error {
	return &Error{Status: 500, Type: "server_error", Code: "internal_error", Message: msg}
}

// Budget and quota reasons returned by users.Reserve (ErrorInfo).
const (
	ReasonBudget      = "BUDGET_EXHAUSTED"
	ReasonConcurrency = "CONCURRENCY_LIMIT"
	ReasonTPM         = "TOKENS_PER_MINUTE_LIMIT"
	ReasonRPM         = "REQUESTS_PER_MINUTE_LIMIT"
)

// FromGRPC maps a service's gRPC error to the API error a client gets.
func FromGRPC(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	st, _ := status.FromError(err)
	reason, field, retry := platform.Details(err)
	msg := st.Message()
	switch st.Code() {
	case codes.InvalidArgument, codes.OutOfRange:
		return InvalidParam(field, msg)
	case codes.Unauthenticated:
		return Unauthorized(msg)
	case codes.PermissionDenied:
		return Forbidden(msg)
	case codes.NotFound:
		return NotFound(msg)
	case codes.FailedPrecondition:
		if reason == ReasonBudget {
			return InsufficientBalance(msg)
		}
		return InvalidParam(field, msg)
	case codes.ResourceExhausted:
		switch reason {
		case ReasonConcurrency:
			return RateLimited("concurrency_limit_exceeded", msg, retry)
		case ReasonTPM, ReasonRPM:
			return RateLimited("rate_limit_exceeded", msg, retry)
		}
		return Overloaded("Server overloaded, please retry shortly", retry)
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
		return Overloaded("Server overloaded, please retry shortly ("+msg+")", retry)
	default:
		return Internal("Internal server error")
	}
}
