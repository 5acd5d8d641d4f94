package jetkit

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	orderv1 "jetkit.dev/contracts/gen/go/shop/order/v1"
)

// The compatibility promise for an added field (contracts/WIRE.md §8), in Go: a consumer built
// from the next contract version (OrderFulfillmentCompleted + `string delivery_note = 6`, built
// here from the registered descriptor) decodes today's messages, and today's type decodes the
// new ones, keeping the new field for re-encoding. interop/test/added-field.test.ts does the same live.
func TestAddedFieldCompatibility(t *testing.T) {
	old := &orderv1.OrderFulfillmentCompleted{OrderId: "0190a0b0-0000-7000-8000-000000000001", CheckoutId: "c"}
	oldPayload, err := Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	fdp := protodesc.ToFileDescriptorProto(old.ProtoReflect().Descriptor().ParentFile())
	for _, m := range fdp.GetMessageType() {
		if m.GetName() == "OrderFulfillmentCompleted" {
			m.Field = append(m.Field, &descriptorpb.FieldDescriptorProto{
				Name: proto.String("delivery_note"), Number: proto.Int32(6), JsonName: proto.String("deliveryNote"),
				Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			})
		}
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	md := fd.Messages().ByName("OrderFulfillmentCompleted")
	note := md.Fields().ByName("delivery_note")

	// New consumer, old message: decodes, the added field is its default.
	v2 := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(oldPayload, v2); err != nil {
		t.Fatal(err)
	}
	if v2.Get(md.Fields().ByName("order_id")).String() != old.OrderId || v2.Get(note).String() != "" {
		t.Fatalf("new consumer read %v", v2)
	}

	// Old consumer, new message: decodes, and re-encoding keeps the new field.
	newPayload := protowire.AppendString(protowire.AppendTag(append([]byte{}, oldPayload...), 6, protowire.BytesType), "leave at the door")
	var v1 orderv1.OrderFulfillmentCompleted
	if err := proto.Unmarshal(newPayload, &v1); err != nil {
		t.Fatal(err)
	}
	if v1.GetOrderId() != old.OrderId {
		t.Fatalf("old consumer read %v", &v1)
	}
	if again, _ := Marshal(&v1); string(again) != string(newPayload) {
		t.Fatal("re-encoding an old type dropped the new field")
	}
}
