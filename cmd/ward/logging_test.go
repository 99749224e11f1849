package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLogOptions(t *testing.T) {
	tests := []struct {
		level, format string
		// lines logged at V(0), V(1), V(2) and as an error
		want    int
		wantErr string
	}{
		{"info", "json", 2, ""},
		{"debug", "json", 3, ""},
		{"2", "json", 4, ""},
		{"error", "json", 1, ""},
		{"info", "text", 2, ""},
		{"loud", "json", 0, `--log-level "loud"`},
		{"info", "xml", 0, `--log-format "xml"`},
	}
	for _, tc := range tests {
		t.Run(tc.level+" "+tc.format, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := (&logOptions{level: tc.level, format: tc.format}).logger(&buf)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.WithName("sync").Info("zero", "source", "prod")
			log.V(1).Info("one")
			log.V(2).Info("two")
			log.Error(errors.New("boom"), "failed")
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != tc.want {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), tc.want, buf.String())
			}
			if tc.format != "json" {
				return
			}
			for _, line := range lines {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("not JSON: %s", line)
				}
				ts, _ := m["ts"].(string)
				if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || m["level"] == nil || m["msg"] == nil {
					t.Fatalf("line lacks ts, level or msg: %s", line)
				}
			}
			if tc.level == "info" && (!strings.Contains(lines[0], `"logger":"sync"`) || !strings.Contains(lines[1], `"level":"error"`)) {
				t.Fatalf("lines = %q", lines)
			}
		})
	}
}
