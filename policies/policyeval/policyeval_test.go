package policyeval

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// custom is a cosign "custom" attestation statement as policy-controller
// hands it to a policy.
const custom = `{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://cosign.sigstore.dev/attestation/v1",
"subject":[{"name":"registry.local/demo","digest":{"sha256":"aa"}}],
"predicate":{"Data":"foobar e2e test","Timestamp":"2026-11-30T10:00:00Z"}}`

// Policies from policy-controller's end-to-end tests.
const (
	cueWorks = `import "time"
before: time.Parse(time.RFC3339, "2049-10-09T17:10:27Z")
predicateType: "https://cosign.sigstore.dev/attestation/v1"
predicate: {
    Timestamp: <before
}`
	cueFails = `import "time"
before: time.Parse(time.RFC3339, "2049-10-09T17:10:27Z")
predicateType: "cosignnotreally.sigstore.dev/attestation/v1"
predicate: {
    Timestamp: <before
}`
	regoWorks = `package sigstore
default isCompliant = false
isCompliant {
  input.predicateType == "https://cosign.sigstore.dev/attestation/v1"
  input.predicate.Data == "foobar e2e test"
}`
	regoFails = `package sigstore
default isCompliant = false
isCompliant {
  input.predicate.Data == "something else"
}`
	regoObjectPass = `package sigstore
isCompliant[response] {
  response := {"result": true, "error": "", "warning": ""}
}`
	regoObjectWarn = `package sigstore
isCompliant[response] {
  response := {"result": true, "error": "", "warning": "scanner is old"}
}`
	regoObjectError = `package sigstore
isCompliant[response] {
  input.predicate.Data != "x"
  response := {"result": false, "error": "Data must be x", "warning": ""}
}`
)

func TestEval(t *testing.T) {
	for _, tc := range []struct {
		name, lang, src string
		pass            bool
		why             string
	}{
		{"cue passes", CUE, cueWorks, true, ""},
		{"cue wrong predicate type", CUE, cueFails, false, "predicateType"},
		{"cue exact value", CUE, `predicate: Data: "foobar e2e test"`, true, ""},
		{"cue wrong value", CUE, `predicate: Data: "foobar key e2e test"`, false, "Data"},
		{"cue incomplete is allowed", CUE, `predicate: Data: string
predicate: Other: int`, true, ""},
		{"rego bool true", Rego, regoWorks, true, ""},
		{"rego bool false", Rego, regoFails, false, "isCompliant is false"},
		{"rego result object", Rego, regoObjectPass, true, ""},
		{"rego warning fails", Rego, regoObjectWarn, false, "warning: scanner is old"},
		{"rego error message", Rego, regoObjectError, false, "Data must be x"},
		{"rego undefined", Rego, "package sigstore\nisCompliant { false }", false, "not true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile(tc.lang, tc.src)
			if err != nil {
				t.Fatal(err)
			}
			err = p.Eval(t.Context(), []byte(custom))
			if tc.pass {
				if err != nil {
					t.Fatalf("want pass, got %v", err)
				}
				return
			}
			if !errors.Is(err, ErrNotCompliant) {
				t.Fatalf("want ErrNotCompliant, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.why) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: want one line naming %q", err, tc.why)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct{ name, lang, src, want string }{
		{"unknown language", "cel", "true", `want cue or rego`},
		{"empty", CUE, "  ", "empty"},
		{"bad cue", CUE, "predicate: {", "CUE:"},
		{"bad rego", Rego, "package sigstore\nisCompliant {", "Rego:"},
		{"wrong package", Rego, "package other\nisCompliant = true", "must be package sigstore"},
		{"network builtin", Rego, "package sigstore\nisCompliant { http.send({\"method\": \"get\", \"url\": \"http://x\"}).status_code == 200 }", "http.send"},
		{"too big", CUE, strings.Repeat("a: 1\n", MaxSourceBytes), "over the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.lang, tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want one line with %q", err, tc.want)
			}
		})
	}
}

func TestEvalBadInput(t *testing.T) {
	for _, lang := range []string{CUE, Rego} {
		src := map[string]string{CUE: cueWorks, Rego: regoWorks}[lang]
		p, err := Compile(lang, src)
		if err != nil {
			t.Fatal(err)
		}
		err = p.Eval(t.Context(), []byte("{not json"))
		if err == nil || errors.Is(err, ErrNotCompliant) {
			t.Fatalf("%s: want an evaluation error, got %v", lang, err)
		}
	}
}

func TestEvalEndedContext(t *testing.T) {
	p, err := Compile(Rego, "package sigstore\nisCompliant { count([x | x := numbers.range(1, 100000000)[_]]) > 0 }")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := p.Eval(ctx, []byte(custom)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the context's error, got %v", err)
	}
}

// TestConcurrentEval runs one compiled program from many goroutines
// (run with -race).
func TestConcurrentEval(t *testing.T) {
	progs := []*Program{}
	for lang, src := range map[string]string{CUE: cueWorks, Rego: regoWorks} {
		p, err := Compile(lang, src)
		if err != nil {
			t.Fatal(err)
		}
		progs = append(progs, p)
	}
	done := make(chan error)
	for i := range 8 {
		go func() { done <- progs[i%2].Eval(t.Context(), []byte(custom)) }()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
