package policies

import (
	"fmt"
	"strings"
)

// FieldError is one problem in one policy document.
type FieldError struct {
	// File is the policy file's path in the bundle.
	File string
	// Doc is the 1-based index of the document in the file.
	Doc int
	// Line is the 1-based line in the file, when known.
	Line int
	// Kind and Name identify the document when known.
	Kind, Name string
	// Field is the path of the offending field, e.g.
	// "spec.authorities[0].key.data"; empty for the document as a whole.
	Field string
	// Detail says what is wrong.
	Detail string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Doc > 0 {
		fmt.Fprintf(&b, ": document %d", e.Doc)
	}
	if e.Kind != "" || e.Name != "" {
		fmt.Fprintf(&b, " (%s %q)", e.Kind, e.Name)
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Detail)
	return b.String()
}

// CompileError lists every problem Compile found. Its message is one line:
// the first few problems and how many more there are.
type CompileError struct {
	Errs []*FieldError
}

const shownErrors = 3

func (e *CompileError) Error() string {
	parts := make([]string, 0, shownErrors+1)
	for i, fe := range e.Errs {
		if i == shownErrors {
			parts = append(parts, fmt.Sprintf("and %d more", len(e.Errs)-shownErrors))
			break
		}
		parts = append(parts, fe.Error())
	}
	if len(e.Errs) == 1 {
		return "invalid policy: " + parts[0]
	}
	return fmt.Sprintf("%d policy problems: %s", len(e.Errs), strings.Join(parts, "; "))
}

// oneLine folds a multi-line message (CEL's carets) into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
