package databricks

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"

	"golang.org/x/oauth2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// errClass is the reference's classification of Zerobus errors.
type errClass int

const (
	classTransient errClass = iota
	classTimeout
	classRateLimited
	classAuth
	classFatal
)

var classNames = [...]string{"Transient", "Timeout", "RateLimited", "Auth", "Fatal"}

func (c errClass) String() string { return classNames[c] }

// engineClass is the engine's class for each: Transient, Timeout and
// RateLimited are retried; Auth and Fatal abort.
func (c errClass) engineClass() resilience.Class {
	switch c {
	case classTimeout:
		return resilience.Timeout
	case classRateLimited:
		return resilience.RateLimited
	case classAuth:
		return resilience.Auth
	case classFatal:
		return resilience.Fatal
	}
	return resilience.Connection
}

func (c errClass) retryable() bool { return c <= classRateLimited }

// zerobusError is an error with its class.
type zerobusError struct {
	class errClass
	err   error
}

func (e *zerobusError) Error() string { return e.class.String() + ": " + e.err.Error() }
func (e *zerobusError) Unwrap() error { return resilience.New(e.class.engineClass(), e.err) }

// classify says what kind of failure err is: gRPC status codes of the
// Zerobus service, OAuth token endpoint responses, network errors.
func classify(err error) errClass {
	var ze *zerobusError
	if errors.As(err, &ze) {
		return ze.class
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		switch sc := re.Response.StatusCode; {
		case sc == http.StatusTooManyRequests:
			return classRateLimited
		case sc == http.StatusRequestTimeout:
			return classTimeout
		case sc >= 500:
			return classTransient
		case sc == http.StatusBadRequest || sc == http.StatusUnauthorized || sc == http.StatusForbidden:
			return classAuth
		}
		return classFatal
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		switch st.Code() {
		case codes.Unauthenticated, codes.PermissionDenied:
			return classAuth
		case codes.DeadlineExceeded:
			return classTimeout
		case codes.ResourceExhausted:
			return classRateLimited
		case codes.Unavailable, codes.Aborted, codes.Internal, codes.Canceled, codes.DataLoss:
			return classTransient
		case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.OutOfRange, codes.Unimplemented, codes.AlreadyExists:
			return classFatal
		}
		return classTransient
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return classTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return classTimeout
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return classTransient // stream closed by the server
	}
	// Unknown status, network and other errors: most often a blip.
	return classTransient
}

// classified wraps err with its class (once).
func classified(err error) error {
	if err == nil {
		return nil
	}
	var ze *zerobusError
	if errors.As(err, &ze) {
		return err
	}
	return &zerobusError{class: classify(err), err: err}
}

func classifiedAs(c errClass, err error) error { return &zerobusError{class: c, err: err} }
