package platform

import (
	"fmt"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ErrorDomain is the domain of the ErrorInfo reasons services return.
const ErrorDomain = "bulkhead.dev"

// InvalidField is INVALID_ARGUMENT naming the field (BadRequest detail):
// the HTTP edge turns it into 422 with param set to the field.
func InvalidField(field, format string, args ...any) error {
	reason := fmt.Sprintf(format, args...)
	st, _ := status.New(codes.InvalidArgument, field+": "+reason).WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: reason}},
	})
	return st.Err()
}

// Reason is an error with a machine-readable reason (ErrorInfo) and, when
// retryAfter > 0, when to try again (RetryInfo).
func Reason(code codes.Code, reason string, retryAfter time.Duration, msg string) error {
	st := status.New(code, msg)
	info := &errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}
	var err error
	if retryAfter > 0 {
		st, err = st.WithDetails(info, &errdetails.RetryInfo{RetryDelay: durationpb.New(retryAfter)})
	} else {
		st, err = st.WithDetails(info)
	}
	if err != nil {
		return status.Error(code, msg)
	}
	return st.Err()
}

// Details reads what Reason and InvalidField put in an error.
func Details(err error) (reason, field string, retryAfter time.Duration) {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			reason = d.GetReason()
		case *errdetails.RetryInfo:
			retryAfter = d.GetRetryDelay().AsDuration()
		case *errdetails.BadRequest:
			if v := d.GetFieldViolations(); len(v) > 0 {
				field = v[0].GetField()
			}
		}
	}
	return reason, field, retryAfter
}
