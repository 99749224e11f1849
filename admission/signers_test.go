package admission

import (
	"testing"

	"ward.dev/ward/admission/imageverify"
)

// TestDistinctSigners: signers are one when their keys are, in any
// format, and otherwise by name; a name is never read for a key.
func TestDistinctSigners(t *testing.T) {
	const id = "sha256:0123456789abcdef"
	key := imageverify.Signer{Name: "key " + id, Key: id}
	notation := imageverify.Signer{Name: `notation subject "CN=release", key ` + id, Key: id}
	lookalike := imageverify.Signer{Name: "subject ci@example.com key " + id + " from issuer https://issuer.example"}
	unenforced := imageverify.Signer{Name: `notation subject "CN=x", key ` + id + " (authenticity not enforced: level audit)"}
	other := imageverify.Signer{Name: "key sha256:fedcba9876543210", Key: "sha256:fedcba9876543210"}
	tests := []struct {
		name      string
		signersOf [][]imageverify.Signer
		want      int
	}{
		{"one key in cosign's format and Notation's", [][]imageverify.Signer{{key}, {notation}}, 1},
		{"one signature for two authorities", [][]imageverify.Signer{{key}, {key}}, 1},
		{"two keys", [][]imageverify.Signer{{key}, {other}}, 2},
		{"a certificate subject that reads like a key name", [][]imageverify.Signer{{key}, {lookalike}}, 2},
		{"a key whose authenticity was not checked", [][]imageverify.Signer{{key}, {unenforced}}, 2},
		{"a matching, not the first signer of each", [][]imageverify.Signer{{key, other}, {key}}, 2},
		{"an authority nobody satisfied", [][]imageverify.Signer{{key}, nil}, 1},
		{"one authority, two signers", [][]imageverify.Signer{{key, other}}, 1},
		{"one authority, none", [][]imageverify.Signer{nil}, 0},
		{"no authority", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := distinctSigners(tt.signersOf); len(got) != tt.want {
				t.Errorf("distinct signers %v, want %d", got, tt.want)
			}
		})
	}
}
