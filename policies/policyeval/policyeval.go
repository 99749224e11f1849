// Package policyeval evaluates the CUE and Rego policies of sigstore
// policy-controller documents, with the meaning policy-controller (through
// cosign's policy package) gives them:
//
//   - cue: the policy is unified with the JSON document and the result
//     must validate (incomplete values are allowed, as cosign's
//     Value.Validate() allows them);
//   - rego: the module must be package sigstore; the query is
//     data.sigstore.isCompliant, and the document passes when it is true,
//     or when it is a set of objects {result, error, warning} one of which
//     has result true and no warning. A warning fails the document, as
//     policy-controller fails it.
//
// Policies are compiled once, when the bundle is compiled; evaluation
// never reaches the network: Rego's http.send and net.lookup_ip_addr are
// not available.
package policyeval

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"

	"cuelang.org/go/cue/cuecontext"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Policy languages.
const (
	CUE  = "cue"
	Rego = "rego"
)

// MaxSourceBytes bounds the source of one policy.
const MaxSourceBytes = 256 << 10

// MaxDocumentBytes bounds a document a policy judges (a statement, or a
// policy result with the admitted object's spec).
const MaxDocumentBytes = 4 << 20

// cueSlots bounds the CUE evaluations running at once, including those a
// request whose deadline passed left running.
var cueSlots = make(chan struct{}, 2*runtime.GOMAXPROCS(0))

// The Rego package and rule policy-controller queries.
const (
	regoPackage = "sigstore"
	regoRule    = "isCompliant"
)

// refusedBuiltins reach outside the process; a verdict must depend only on
// the bundle and the image's signed material.
var refusedBuiltins = []string{"http.send", "net.lookup_ip_addr", "opa.runtime"}

// ErrNotCompliant is wrapped by every evaluation that judged the document
// and found it failing; other errors are evaluation errors (also failures
// for callers, except an ended context).
var ErrNotCompliant = errors.New("policy is not compliant")

// Program is a compiled policy. It is safe for concurrent use.
type Program struct {
	lang string
	src  string
	rego *rego.PreparedEvalQuery
}

// Lang is the policy's language (cue or rego).
func (p *Program) Lang() string { return p.lang }

// Source is the policy's source text.
func (p *Program) Source() string { return p.src }

// Compile compiles a policy of the given language. The error is one line.
func Compile(lang, src string) (*Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("the policy is empty")
	}
	if len(src) > MaxSourceBytes {
		return nil, fmt.Errorf("the policy is %d bytes, over the limit of %d", len(src), MaxSourceBytes)
	}
	switch lang {
	case CUE:
		v := cuecontext.New().CompileString(src)
		if err := v.Err(); err != nil {
			return nil, fmt.Errorf("CUE: %s", oneLine(err.Error()))
		}
		return &Program{lang: lang, src: src}, nil
	case Rego:
		q, err := compileRego(src)
		if err != nil {
			return nil, err
		}
		return &Program{lang: lang, src: src, rego: q}, nil
	}
	return nil, fmt.Errorf("type is %q, want cue or rego", lang)
}

func compileRego(src string) (*rego.PreparedEvalQuery, error) {
	caps := ast.CapabilitiesForThisVersion(ast.CapabilitiesRegoVersion(ast.RegoV0))
	caps.Builtins = slices.DeleteFunc(caps.Builtins, func(b *ast.Builtin) bool {
		return slices.Contains(refusedBuiltins, b.Name)
	})
	mod, err := ast.ParseModuleWithOpts(regoPackage+".rego", src, ast.ParserOptions{RegoVersion: ast.RegoV0, Capabilities: caps})
	if err != nil {
		return nil, fmt.Errorf("Rego: %s", regoErrors(err))
	}
	if got := strings.TrimPrefix(mod.Package.Path.String(), "data."); got != regoPackage {
		return nil, fmt.Errorf("Rego: the module is package %s; policy-controller queries data.%s.%s, so it must be package %s", got, regoPackage, regoRule, regoPackage)
	}
	r := rego.New(
		rego.Query(fmt.Sprintf("%s = data.%s.%s", regoRule, regoPackage, regoRule)),
		rego.ParsedModule(mod),
		rego.SetRegoVersion(ast.RegoV0),
		rego.Capabilities(caps),
	)
	q, err := r.PrepareForEval(context.Background())
	if err != nil {
		return nil, fmt.Errorf("Rego: %s", regoErrors(err))
	}
	return &q, nil
}

// regoErrors renders OPA's parse and compile errors as "line N: message",
// joined by "; ".
func regoErrors(err error) string {
	var errs ast.Errors
	if !errors.As(err, &errs) || len(errs) == 0 {
		return oneLine(err.Error())
	}
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		if e.Location != nil {
			out = append(out, fmt.Sprintf("line %d: %s", e.Location.Row, e.Message))
		} else {
			out = append(out, e.Message)
		}
	}
	return oneLine(strings.Join(out, "; "))
}

// Eval judges a JSON document. It returns nil when the document passes,
// an error wrapping ErrNotCompliant when the policy judged it failing,
// the context's error when ctx ended, and another error when the policy
// could not be evaluated. Errors are one line.
func (p *Program) Eval(ctx context.Context, doc []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(doc) > MaxDocumentBytes {
		return fmt.Errorf("the document is %d bytes, over the limit of %d", len(doc), MaxDocumentBytes)
	}
	switch p.lang {
	case CUE:
		// CUE evaluation takes no context: the request is answered when
		// ctx ends, and the evaluation finishes on its own, holding its
		// slot: at most cueSlots run at once, abandoned or not.
		select {
		case cueSlots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		done := make(chan error, 1)
		go func() {
			defer func() { <-cueSlots }()
			done <- evalCUE(p.src, doc)
		}()
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	case Rego:
		return evalRego(ctx, p.rego, doc)
	}
	return fmt.Errorf("unknown policy language %q", p.lang)
}

// evalCUE unifies the policy with the document in a new context (a CUE
// context is not safe for concurrent use).
func evalCUE(src string, doc []byte) error {
	cctx := cuecontext.New()
	pol := cctx.CompileString(src)
	if err := pol.Err(); err != nil {
		return fmt.Errorf("CUE: %s", oneLine(err.Error()))
	}
	v := cctx.CompileBytes(doc)
	if err := v.Err(); err != nil {
		return fmt.Errorf("CUE: the document is not valid input: %s", oneLine(err.Error()))
	}
	if err := pol.Unify(v).Validate(); err != nil {
		return fmt.Errorf("%w: CUE: %s", ErrNotCompliant, oneLine(err.Error()))
	}
	return nil
}

// ruleResult is the object form of isCompliant.
type ruleResult struct {
	Result  bool   `json:"result"`
	Error   string `json:"error"`
	Warning string `json:"warning"`
}

func evalRego(ctx context.Context, q *rego.PreparedEvalQuery, doc []byte) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var input any
	if err := dec.Decode(&input); err != nil {
		return fmt.Errorf("Rego: the document is not JSON: %s", oneLine(err.Error()))
	}
	rs, err := q.Eval(ctx, rego.EvalInput(input))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("Rego: %s", oneLine(err.Error()))
	}
	why := fmt.Sprintf("data.%s.%s is not true", regoPackage, regoRule)
	for _, r := range rs {
		switch v := r.Bindings[regoRule].(type) {
		case bool:
			if v {
				return nil
			}
			why = fmt.Sprintf("data.%s.%s is false", regoPackage, regoRule)
		case []any:
			for _, item := range v {
				raw, err := json.Marshal(item)
				if err != nil {
					continue
				}
				var res ruleResult
				if json.Unmarshal(raw, &res) != nil {
					continue
				}
				switch {
				case res.Result && res.Warning == "":
					return nil
				case res.Result:
					// The first compliant result decides, as in cosign;
					// policy-controller fails one that carries a warning.
					return fmt.Errorf("%w: Rego: warning: %s", ErrNotCompliant, oneLine(res.Warning))
				case res.Error != "":
					why = res.Error
				}
			}
		}
	}
	return fmt.Errorf("%w: Rego: %s", ErrNotCompliant, oneLine(why))
}

// oneLine folds whitespace and bounds the length of a message.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const max = 400
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}
