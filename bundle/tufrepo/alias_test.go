package tufrepo_test

import "crypto"

type tufrepoPub = crypto.PublicKey
