// Package plainyaml converts YAML documents written in the plain subset
// that policies are authored in to JSON, several times faster than a full
// YAML parser, and declines every document that uses anything else, so
// that its caller parses that one with a full parser.
//
// The subset: block mappings and block sequences (a sequence may stand at
// its key's indentation, a mapping may start on its item's line), flow
// mappings and sequences on one line, one-line single- and double-quoted
// scalars, plain scalars on one line, literal block scalars ("|" and "|-",
// as PEM keys are written), and comments. Plain keys are words of
// letters, digits, "_", ".", "-" and "/" that start with a letter or "_";
// plain values start with a letter, a digit, "_", "/", "$", "^" or "(".
// Among what is declined: a byte outside printable ASCII, a tab, a
// carriage return, a directive or document marker, an anchor, alias, tag,
// folded or kept block scalar, multi-line plain or quoted scalar, complex
// key, keys of one mapping that are equal but for case, and a plain scalar
// that YAML 1.1 would read as anything other than a string, true, false,
// null or a decimal integer of at most 15 digits.
//
// A document ToJSON accepts converts to JSON that means what
// sigs.k8s.io/yaml's YAMLToJSONStrict makes of it, and that parser accepts
// it: FuzzToJSON and FuzzToJSONShapes check both, against that parser.
package plainyaml
