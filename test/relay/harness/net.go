package harness

import (
	"fmt"
	"math/rand/v2"
)

// Net is the loopback /24 this process uses: 127.a.b.0/24, a in 100..249, b random.
var Net = func() string {
	return fmt.Sprintf("127.%d.%d", 100+rand.IntN(150), rand.IntN(256))
}()

// IP is host n of Net (1..254).
func IP(n int) string { return fmt.Sprintf("%s.%d", Net, n) }
