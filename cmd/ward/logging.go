package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
)

// logOptions choose how ward serve logs.
type logOptions struct {
	level  string
	format string
}

func (o *logOptions) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.level, "log-level", "info", "debug, info or error; or a number N for logr's V(N) detail (debug is 1)")
	cmd.Flags().StringVar(&o.format, "log-format", "json", "json (one object a line: ts, level, logger, msg, key/values) or text")
}

// logger builds the process's logger on zap through zapr (the pair
// controller-runtime's zap integration is made of) and makes it
// controller-runtime's and client-go's too, so every line has a time and a
// level and none goes elsewhere.
func (o *logOptions) logger(w io.Writer) (logr.Logger, error) {
	var lvl zapcore.Level
	switch o.level {
	case "debug":
		lvl = zapcore.DebugLevel
	case "info", "":
		lvl = zapcore.InfoLevel
	case "error":
		lvl = zapcore.ErrorLevel
	default:
		n, err := strconv.Atoi(o.level)
		if err != nil || n < 0 || n > 10 {
			return logr.Logger{}, fmt.Errorf("--log-level %q: want debug, info, error or a number from 0 to 10", o.level)
		}
		lvl = zapcore.Level(-n)
	}
	cfg := zap.NewProductionEncoderConfig() // ts, level, logger, msg
	cfg.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	var enc zapcore.Encoder
	switch o.format {
	case "json", "":
		enc = zapcore.NewJSONEncoder(cfg)
	case "text":
		cfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(cfg)
	default:
		return logr.Logger{}, fmt.Errorf("--log-format %q: want json or text", o.format)
	}
	// No sampling (controller-runtime's production default drops lines
	// past 100 a second): audit-mode decisions exist only as log lines.
	log := zapr.NewLogger(zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl), zap.AddStacktrace(zapcore.DPanicLevel)))
	ctrl.SetLogger(log)
	klog.SetLogger(log)
	return log, nil
}
