package tufrepo

import "time"

// Expiry is how long each role's metadata stays valid after it is signed.
type Expiry struct {
	Root      time.Duration
	Targets   time.Duration
	Env       time.Duration
	Snapshot  time.Duration
	Timestamp time.Duration
}

const day = 24 * time.Hour

// DefaultExpiry keeps the online roles short: a timestamp not refreshed
// within a day is noticed by every client (freeze attack).
var DefaultExpiry = Expiry{
	Root:      365 * day,
	Targets:   365 * day,
	Env:       180 * day,
	Snapshot:  7 * day,
	Timestamp: day,
}

func (e Expiry) withDefaults() Expiry {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&e.Root, DefaultExpiry.Root)
	def(&e.Targets, DefaultExpiry.Targets)
	def(&e.Env, DefaultExpiry.Env)
	def(&e.Snapshot, DefaultExpiry.Snapshot)
	def(&e.Timestamp, DefaultExpiry.Timestamp)
	return e
}
