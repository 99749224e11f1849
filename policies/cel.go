package policies

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
)

// CEL limits. The cost limit is the one Kubernetes applies to a single
// ValidatingAdmissionPolicy expression; the length limit keeps compilation
// of hostile bundles cheap.
const (
	DefaultCELCostLimit     = 1_000_000
	MaxExpressionLength     = 10_000
	celInterruptCheckPeriod = 100
)

// ErrCELCost is returned when an expression exceeds its cost limit.
var ErrCELCost = errors.New("CEL cost limit exceeded")

// celEnvs holds the two CEL environments; they are built once per Compile.
type celEnvs struct {
	validation  *cel.Env
	attestation *cel.Env
	costLimit   uint64
}

func newCELEnvs(costLimit uint64) (*celEnvs, error) {
	common := []cel.EnvOption{
		ext.Strings(), ext.Lists(), ext.Sets(), ext.Math(), ext.Encoders(),
		cel.OptionalTypes(),
		cel.HomogeneousAggregateLiterals(),
		cel.CrossTypeNumericComparisons(true),
	}
	v, err := cel.NewEnv(append(common,
		cel.Variable("object", cel.DynType),
		cel.Variable("oldObject", cel.DynType),
		cel.Variable("request", cel.DynType),
	)...)
	if err != nil {
		return nil, fmt.Errorf("failed to make the CEL environment: %w", err)
	}
	a, err := cel.NewEnv(append(common,
		cel.Variable("predicate", cel.DynType),
		cel.Variable("predicateType", cel.StringType),
	)...)
	if err != nil {
		return nil, fmt.Errorf("failed to make the CEL environment: %w", err)
	}
	return &celEnvs{validation: v, attestation: a, costLimit: costLimit}, nil
}

// Condition is a compiled CEL expression that returns a bool.
type Condition struct {
	expr string
	prg  cel.Program
}

// Expression is the source text.
func (c *Condition) Expression() string { return c.expr }

func (e *celEnvs) compile(env *cel.Env, expr string) (*Condition, error) {
	if expr == "" {
		return nil, fmt.Errorf("empty expression")
	}
	if len(expr) > MaxExpressionLength {
		return nil, fmt.Errorf("expression is %d bytes, over the limit of %d", len(expr), MaxExpressionLength)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("CEL: %s", oneLine(iss.Err().Error()))
	}
	if t := ast.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, fmt.Errorf("CEL: expression returns %s, want bool", t)
	}
	prg, err := env.Program(ast,
		cel.CostLimit(e.costLimit),
		cel.InterruptCheckFrequency(celInterruptCheckPeriod),
	)
	if err != nil {
		return nil, fmt.Errorf("CEL: %s", oneLine(err.Error()))
	}
	return &Condition{expr: expr, prg: prg}, nil
}

// Eval evaluates the condition with the given variables. A result that is
// not a bool, an evaluation error, or a cost over the limit is an error;
// callers treat an error as a failed condition.
func (c *Condition) Eval(ctx context.Context, vars map[string]any) (bool, error) {
	out, _, err := c.prg.ContextEval(ctx, vars)
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return false, err
		}
		msg := oneLine(err.Error())
		if strings.Contains(msg, "cost limit exceeded") {
			return false, fmt.Errorf("%w: %s", ErrCELCost, msg)
		}
		return false, fmt.Errorf("CEL: %s", msg)
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("CEL: expression returned %s, want bool", out.Type())
	}
	return b, nil
}
