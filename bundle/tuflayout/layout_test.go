package tuflayout

import (
	"encoding/json"
	"testing"
)

func TestValidateEnv(t *testing.T) {
	for env, ok := range map[string]bool{
		"dev": true, "prod-eu-1": true, "a": true,
		"": false, "Dev": false, "-dev": false, "dev-": false, "dev/x": false, "..": false,
		"targets": false, "root": false, "snapshot": false, "timestamp": false,
		"abcdefghijklmnopqrstuvwxyz0123456": false,
	} {
		if err := ValidateEnv(env); (err == nil) != ok {
			t.Errorf("ValidateEnv(%q) = %v, want ok=%v", env, err, ok)
		}
	}
}

func TestParseVersioned(t *testing.T) {
	tests := []struct {
		name    string
		role    string
		version int64
		ok      bool
	}{
		{"1.root.json", "root", 1, true},
		{"12.dev.json", "dev", 12, true},
		{"timestamp.json", "", 0, false},
		{"01.root.json", "", 0, false},
		{"0.root.json", "", 0, false},
		{"-1.root.json", "", 0, false},
		{"1..json", "", 0, false},
	}
	for _, tt := range tests {
		role, v, ok := ParseVersioned(tt.name)
		if role != tt.role || v != tt.version || ok != tt.ok {
			t.Errorf("ParseVersioned(%q) = %q %d %v", tt.name, role, v, ok)
		}
	}
}

func TestParseCustomRefusesBadFields(t *testing.T) {
	for _, raw := range []string{`{}`, `{"version":0}`, `{"version":-3}`, `{"version":"1"}`, `{"version":1} {}`, `[]`} {
		r := json.RawMessage(raw)
		if _, err := ParseCustom(&r); err == nil {
			t.Errorf("ParseCustom(%s) accepted", raw)
		}
	}
	if _, err := ParseCustom(nil); err == nil {
		t.Error("ParseCustom(nil) accepted")
	}
	big := json.RawMessage(`{"version":1,"commit":"` + string(make([]byte, MaxCustomBytes)) + `"}`)
	if _, err := ParseCustom(&big); err == nil {
		t.Error("oversized custom accepted")
	}
}

func FuzzParseCustom(f *testing.F) {
	f.Add([]byte(`{"version":3,"commit":"abc","promotedFrom":{"env":"dev","version":2}}`))
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		raw := json.RawMessage(data)
		c, err := ParseCustom(&raw)
		if err != nil {
			return
		}
		if c.Version < 1 {
			t.Fatalf("accepted version %d", c.Version)
		}
		back, err := c.Raw()
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseCustom(back)
		if err != nil || again.Version != c.Version || again.Commit != c.Commit {
			t.Fatalf("round trip changed %+v into %+v (%v)", c, again, err)
		}
	})
}
