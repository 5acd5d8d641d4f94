package jetkit

import (
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	orderv1 "jetkit.dev/contracts/gen/go/shop/order/v1"
)

// Every file of the buf image (the catalog TypeScript loads) is linked into this package, so Go
// knows exactly the events TypeScript knows.
func TestEveryContractFileIsRegistered(t *testing.T) {
	b, err := os.ReadFile("../../gen/jetkit.binpb")
	if err != nil {
		t.Fatal(err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	events := 0
	for _, f := range set.GetFile() {
		if _, err := protoregistry.GlobalFiles.FindFileByPath(f.GetName()); err != nil {
			t.Errorf("%s is not linked: add its generated package to contracts.go", f.GetName())
		}
		for _, m := range f.GetMessageType() {
			if _, err := EventByType(f.GetPackage() + "." + m.GetName()); err == nil {
				events++
			}
		}
	}
	if events == 0 || events != len(Events()) {
		t.Fatalf("image has %d events, registry %d", events, len(Events()))
	}
}

func TestEventComesFromTheContract(t *testing.T) {
	ev, err := EventOf(&orderv1.OrderFulfillmentCompleted{})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Subject != "order.fulfillment.completed" || ev.Stream != "ORDER" || ev.PartitionKey != "order_id" {
		t.Fatalf("EventOf = %+v", ev)
	}
	if key := partitionKeyOf(ev, &orderv1.OrderFulfillmentCompleted{OrderId: "o-1"}); key != "o-1" {
		t.Fatalf("partition key = %q", key)
	}
	if by, err := EventBySubject("order.fulfillment.completed"); err != nil || by.Type != ev.Type {
		t.Fatalf("EventBySubject = %+v, %v", by, err)
	}
	if _, err := EventOf(&orderv1.Shipment{}); !IsCode(err, CodeUnknownType) {
		t.Fatalf("a non-event message must be refused with %s, got %v", CodeUnknownType, err)
	}
	if _, err := EventBySubject("order.>"); !IsCode(err, CodeUnknownSubject) {
		t.Fatalf("a wildcard subject must be refused with %s, got %v", CodeUnknownSubject, err)
	}
}

func TestHeaderValueIsSafeAndMatchesTypeScript(t *testing.T) {
	cases := map[string]string{
		"  a\r\nInjected: x \t": "a%20Injected:%20x",
		"\u00a0\ufeffkey\u2028": "key",
		"k\x00\x01\x7fv":        "k%20v",
		"keep\u0085end":         "keep%20end", // C1 controls are controls too
		"Euro € 😀":              "Euro%20%E2%82%AC%20%F0%9F%98%80",
		"plain-id_1.2:3/4":      "plain-id_1.2:3/4",
	}
	for in, want := range cases {
		if got := HeaderValue(in); got != want {
			t.Errorf("HeaderValue(%q) = %q, want %q", in, got, want)
		}
		if back, err := PercentDecode(HeaderValue(in)); err != nil || HeaderValue(back) != want {
			t.Errorf("PercentDecode(HeaderValue(%q)) = %q, %v", in, back, err)
		}
	}
	for _, unit := range []string{"x", "é", "€", "😀", "a b"} {
		for n := 300; n < 1100; n += 37 {
			text := strings.Repeat(unit, n)
			v := HeaderValue(text)
			if len(v) > MaxHeaderValue || strings.ContainsFunc(v, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
				t.Fatalf("%q x %d: %d characters, or not printable ASCII: %q", unit, n, len(v), v)
			}
			back, err := PercentDecode(v)
			if err != nil {
				t.Fatalf("%q x %d: cut inside an escape: %v", unit, n, err)
			}
			if strings.HasSuffix(v, "%E2%80%A6") && !strings.HasPrefix(text, strings.TrimSuffix(back, "…")) {
				t.Fatalf("%q x %d: the cut value is not a prefix", unit, n)
			}
		}
	}
	if _, err := PercentDecode("%C0%A0"); err == nil {
		t.Fatal("an overlong escape must be refused")
	}
}

func TestTraceContextContinues(t *testing.T) {
	parent, ok := ParseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if !ok {
		t.Fatal("valid traceparent refused")
	}
	child := parent.Child()
	if child.TraceID != parent.TraceID || child.Flags != "01" || child.SpanID == parent.SpanID || len(child.SpanID) != 16 {
		t.Fatalf("child %+v of %+v", child, parent)
	}
	if back, ok := ParseTraceparent(child.String()); !ok || back != child {
		t.Fatalf("child does not round-trip: %s", child)
	}
	for _, bad := range []string{"", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331", "00-00000000000000000000000000000000-b7ad6b7169203331-01", "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"} {
		if _, ok := ParseTraceparent(bad); ok {
			t.Errorf("ParseTraceparent(%q) accepted", bad)
		}
	}
}

func TestNewIDIsATimeOrderedUUIDv7(t *testing.T) {
	prev := ""
	for range 2000 {
		id := NewID()
		if len(id) != 36 || id[14] != '7' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("%s is not a UUIDv7", id)
		}
		if id <= prev {
			t.Fatalf("%s does not sort after %s", id, prev)
		}
		prev = id
	}
}
