// Package review reads AdmissionReview requests and writes their
// responses in one pass over the body, without the API machinery's
// codecs: the API server's webhook calls are ward's hot path, and its
// AdmissionReviews carry a whole object (managedFields, status, the rest
// of the spec) of which a decision reads a few fields.
//
// Names are matched case-sensitively, as the API server does; duplicate
// names and invalid UTF-8 are refused, so that no two readers of one
// request can see different objects.
package review

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"ward.dev/ward/admission/workload"
	"ward.dev/ward/internal/jsonscan"
)

// MaxBody is the largest request body read: the API server's own limit
// for an object (3 MiB) twice over (object and oldObject), with room for
// the request's other fields.
const MaxBody = 7 << 20

// API versions of AdmissionReview. Both have the same fields.
const (
	V1      = "admission.k8s.io/v1"
	V1beta1 = "admission.k8s.io/v1beta1"
)

// Operations an admission request can be about.
const (
	Create  = "CREATE"
	Update  = "UPDATE"
	Delete  = "DELETE"
	Connect = "CONNECT"
)

// ErrBadRequest is wrapped by every error about a request's body.
var ErrBadRequest = errors.New("bad AdmissionReview")

// GroupVersionKind names a kind in an API group.
type GroupVersionKind struct {
	Group   string
	Version string
	Kind    string
}

// UserInfo is who made the request.
type UserInfo struct {
	Username string
	Groups   []string
}

// Request is an AdmissionReview's request, with the fields a decision
// reads.
type Request struct {
	UID       string
	Kind      GroupVersionKind
	Name      string
	Namespace string
	Operation string
	UserInfo  UserInfo
	DryRun    bool
	// Object and OldObject are the raw JSON of the object as admitted and
	// before an update, nil when absent or null. They share the body's
	// memory, which Release gives back.
	Object    []byte
	OldObject []byte
	// Fields are Object's fields that a decision reads, decoded in the
	// same pass; nil when there is no object, or it is not a workload as
	// ward reads one (a decision reads it again and says why).
	Fields *workload.Fields

	// body is the pooled buffer Object and OldObject share; see Release.
	body *[]byte
}

// bodies are buffers for request bodies of at most preallocated bytes:
// the API server's reviews, a few KiB each, are a third of what a review
// allocates.
var bodies = sync.Pool{New: func() any { return new([]byte) }}

// Release gives the request's body back for another request: Object and
// OldObject, and anything sliced from them, must not be used after it
// (every other field is a copy). The bytes are zeroed, so that a use
// between Release and the buffer's next request finds no object; after
// that it would find another request's. Release of a nil request, or
// twice, does nothing.
func (r *Request) Release() {
	if r == nil || r.body == nil {
		return
	}
	b := r.body
	r.body, r.Object, r.OldObject = nil, nil, nil
	releaseBody(b)
}

// releaseBody zeroes a pooled buffer and puts it back; nil does nothing.
func releaseBody(b *[]byte) {
	if b == nil {
		return
	}
	clear(*b) // the bytes this request used: earlier ones were cleared by their own release
	*b = (*b)[:0]
	bodies.Put(b)
}

// Read reads an AdmissionReview from an HTTP request: a JSON body of at
// most MaxBody bytes. It returns the review's API version (V1 or V1beta1),
// to answer in, and its request. On error, the version is V1 and the
// status is the HTTP status the error calls for.
func Read(r *http.Request) (apiVersion string, req *Request, status int, err error) {
	if r.Body == nil || r.Body == http.NoBody {
		return V1, nil, http.StatusBadRequest, fmt.Errorf("%w: the request body is empty", ErrBadRequest)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		return V1, nil, http.StatusBadRequest, fmt.Errorf("%w: content type %q, want application/json", ErrBadRequest, ct)
	}
	if r.ContentLength > MaxBody {
		return V1, nil, http.StatusRequestEntityTooLarge, fmt.Errorf("%w: the request body is over the limit of %d bytes", ErrBadRequest, MaxBody)
	}
	body, pooled, err := readBody(r) // pooled only on success, and only for bodies far under MaxBody
	if err != nil {
		return V1, nil, http.StatusBadRequest, fmt.Errorf("failed to read the request body: %w", err)
	}
	if len(body) > MaxBody {
		return V1, nil, http.StatusRequestEntityTooLarge, fmt.Errorf("%w: the request body is over the limit of %d bytes", ErrBadRequest, MaxBody)
	}
	apiVersion, req, err = Decode(body)
	if err != nil {
		releaseBody(pooled)
		return apiVersion, nil, http.StatusBadRequest, err
	}
	req.body = pooled
	return apiVersion, req, http.StatusOK, nil
}

// preallocated is the most of a body allocated before it arrives: a
// client's Content-Length alone must not reserve memory.
const preallocated = 64 << 10

// readBody reads at most MaxBody+1 bytes of r's body, in one allocation
// when the request says a length of at most 64 KiB (the API server says
// it; its reviews are a few KiB).
func readBody(r *http.Request) (body []byte, pooled *[]byte, err error) {
	if r.ContentLength < 0 || r.ContentLength > preallocated {
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
		return body, nil, err
	}
	pooled = bodies.Get().(*[]byte)
	need := int(r.ContentLength) + 1 // one more byte, to see a body longer than it said
	if cap(*pooled) < need {
		*pooled = make([]byte, need, max(need, 16<<10))
	}
	*pooled = (*pooled)[:need] // what Release clears
	body = *pooled
	n, err := io.ReadFull(r.Body, body)
	switch {
	case err == io.ErrUnexpectedEOF && int64(n) == r.ContentLength:
		return body[:n], pooled, nil
	case err == nil:
		err = errors.New("the body is longer than its Content-Length")
	}
	releaseBody(pooled)
	return nil, nil, err
}

// Decode decodes an AdmissionReview of either API version that carries a
// request, in one pass: the object's workload fields are decoded as it
// goes by, the rest of it is only scanned.
func Decode(body []byte) (apiVersion string, req *Request, err error) {
	apiVersion, req, err = decode(body)
	if err != nil {
		if apiVersion == "" {
			apiVersion = V1
		}
		return apiVersion, nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return apiVersion, req, nil
}

func decode(body []byte) (apiVersion string, req *Request, err error) {
	s := jsonscan.New(body)
	var kind string
	var seen jsonscan.Names
	err = s.Object(func(name []byte) (err error) {
		switch string(name) {
		case "apiVersion":
			err = seen.Read(0, name, func() error { apiVersion, err = s.OptString(); return err })
		case "kind":
			err = seen.Read(1, name, func() error { kind, err = s.OptString(); return err })
		case "request":
			err = seen.Read(2, name, func() error {
				if null, err := s.Null(); null || err != nil {
					return err
				}
				req = &Request{}
				return req.scan(s)
			})
		default:
			err = s.Skip()
		}
		return err
	})
	if err == nil {
		err = s.End()
	}
	if apiVersion != V1 && apiVersion != V1beta1 {
		apiVersion = ""
	}
	switch {
	case err != nil:
		return apiVersion, nil, err
	case apiVersion == "":
		return "", nil, fmt.Errorf("its apiVersion is not %s or %s", V1, V1beta1)
	case kind != "AdmissionReview":
		return apiVersion, nil, fmt.Errorf("its kind is %q, not AdmissionReview", kind)
	case req == nil:
		return apiVersion, nil, errors.New("it has no request")
	case req.UID == "":
		return apiVersion, nil, errors.New("its request has no uid")
	}
	return apiVersion, req, nil
}

func (req *Request) scan(s *jsonscan.Scanner) error {
	var seen jsonscan.Names
	str := func(bit uint, name []byte, v *string) error {
		return seen.Read(bit, name, func() (err error) { *v, err = s.OptString(); return err })
	}
	return s.Object(func(name []byte) error {
		switch string(name) {
		case "uid":
			return str(0, name, &req.UID)
		case "name":
			return str(1, name, &req.Name)
		case "namespace":
			return str(2, name, &req.Namespace)
		case "operation":
			return str(3, name, &req.Operation)
		case "kind":
			return seen.Read(4, name, func() error {
				var seen jsonscan.Names
				req.Kind = GroupVersionKind{}
				return s.OptObject(func(name []byte) error {
					switch string(name) {
					case "group":
						return seen.Read(0, name, func() (err error) { req.Kind.Group, err = s.OptString(); return err })
					case "version":
						return seen.Read(1, name, func() (err error) { req.Kind.Version, err = s.OptString(); return err })
					case "kind":
						return seen.Read(2, name, func() (err error) { req.Kind.Kind, err = s.OptString(); return err })
					}
					return s.Skip()
				})
			})
		case "userInfo":
			return seen.Read(5, name, func() error {
				var seen jsonscan.Names
				req.UserInfo = UserInfo{}
				return s.OptObject(func(name []byte) error {
					switch string(name) {
					case "username":
						return seen.Read(0, name, func() (err error) { req.UserInfo.Username, err = s.OptString(); return err })
					case "groups":
						return seen.Read(1, name, func() error {
							if null, err := s.Null(); null || err != nil {
								return err
							}
							return s.Array(func() error {
								g, err := s.OptString()
								req.UserInfo.Groups = append(req.UserInfo.Groups, g)
								return err
							})
						})
					}
					return s.Skip()
				})
			})
		case "dryRun":
			return seen.Read(6, name, func() error {
				if null, err := s.Null(); null || err != nil {
					return err
				}
				var err error
				req.DryRun, err = s.Bool()
				return err
			})
		case "object":
			return seen.Read(7, name, func() error {
				req.Object, req.Fields = nil, nil
				if null, err := s.Null(); null || err != nil {
					return err
				}
				mark, f := s.Mark(), &workload.Fields{}
				if err := f.Scan(s); err != nil {
					// Not a workload as ward reads one: whether that
					// matters depends on the kind, which may come later.
					// Decide reads the object again and says why.
					s.Rewind(mark)
					if err := s.Skip(); err != nil {
						return err
					}
					f = nil
				}
				req.Object, req.Fields = s.Bytes(mark.Offset()), f
				return nil
			})
		case "oldObject":
			return seen.Read(8, name, func() error {
				req.OldObject = nil
				if null, err := s.Null(); null || err != nil {
					return err
				}
				from := s.Offset()
				if err := s.Skip(); err != nil {
					return err
				}
				req.OldObject = s.Bytes(from)
				return nil
			})
		}
		return s.Skip()
	})
}

// PatchTypeJSONPatch is the only patch type admission webhooks return.
const PatchTypeJSONPatch = "JSONPatch"

// Status is the result of a request that was denied or failed.
type Status struct {
	Code    int32  `json:"code,omitzero"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// Response is an AdmissionReview's response.
type Response struct {
	UID     string  `json:"uid"`
	Allowed bool    `json:"allowed"`
	Result  *Status `json:"status,omitempty"`
	// Patch is a JSON patch (RFC 6902), sent base64-encoded.
	Patch            []byte            `json:"patch,omitempty"`
	PatchType        string            `json:"patchType,omitempty"`
	AuditAnnotations map[string]string `json:"auditAnnotations,omitempty"`
	Warnings         []string          `json:"warnings,omitempty"`
}

// Allowed admits the request.
func Allowed() Response { return Response{Allowed: true, Result: &Status{Code: http.StatusOK}} }

// Denied refuses the request with message, which the API server shows
// its client.
func Denied(message string) Response {
	return Response{Result: &Status{Code: http.StatusForbidden, Reason: "Forbidden", Message: message}}
}

// Errored refuses a request that could not be decided, with the HTTP
// status code the error calls for.
func Errored(code int, err error) Response {
	return Response{Result: &Status{Code: int32(code), Message: err.Error()}}
}

type reviewOut struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Response   *Response `json:"response"`
}

// Write writes resp as an AdmissionReview of apiVersion, the request's.
// The HTTP status is 200 whatever the response: the API server reads a
// failed request's status from the review. Invalid UTF-8 in messages (a
// registry's error text) is written as U+FFFD; a response that cannot be
// encoded at all is written as a denial, never as an empty body.
func Write(w http.ResponseWriter, apiVersion string, resp Response) error {
	body, err := json.Marshal(reviewOut{APIVersion: apiVersion, Kind: "AdmissionReview", Response: &resp})
	if err != nil {
		err = fmt.Errorf("failed to encode the AdmissionReview response: %w", err)
		fallback := Errored(http.StatusInternalServerError, errors.New("ward failed to encode its response"))
		fallback.UID = resp.UID
		body, _ = json.Marshal(reviewOut{APIVersion: apiVersion, Kind: "AdmissionReview", Response: &fallback})
	}
	w.Header().Set("Content-Type", "application/json")
	if _, werr := w.Write(body); werr != nil {
		return fmt.Errorf("failed to write the AdmissionReview response: %w", werr)
	}
	return err
}
