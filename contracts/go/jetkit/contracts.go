package jetkit

// Every generated contract package, so the descriptors (and with them every subject and stream)
// are registered whenever this package is linked: a consumer can decode any event the bus
// carries without its author remembering an import. A test checks this list against the buf
// image, so a new contract package that is missing here fails the tests.
import (
	_ "jetkit.dev/contracts/gen/go/jetkit/v1"
	_ "jetkit.dev/contracts/gen/go/shop/common/v1"
	_ "jetkit.dev/contracts/gen/go/shop/customer/v1"
	_ "jetkit.dev/contracts/gen/go/shop/inventory/v1"
	_ "jetkit.dev/contracts/gen/go/shop/order/v1"
	_ "jetkit.dev/contracts/gen/go/shop/payment/v1"
)
