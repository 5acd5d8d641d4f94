package jetkit

import (
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Marshal encodes an event as contracts/WIRE.md §3 says: protobuf binary with fields in
// field-number order at every level, byte for byte what the TypeScript and Rust encoders write.
// Go's encoder writes the members of a oneof after the other fields, so the bytes are reordered
// (a stable sort: repeated elements keep their order).
func Marshal(m proto.Message) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	return fieldOrder(b, m.ProtoReflect().Descriptor())
}

func fieldOrder(b []byte, md protoreflect.MessageDescriptor) ([]byte, error) {
	type field struct {
		num protowire.Number
		raw []byte
	}
	var fields []field
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, protowire.ParseError(m)
		}
		raw := b[:n+m]
		if fd := md.Fields().ByNumber(num); typ == protowire.BytesType && fd != nil && fd.Message() != nil && !fd.IsMap() {
			inner, _ := protowire.ConsumeBytes(b[n:])
			sorted, err := fieldOrder(inner, fd.Message())
			if err != nil {
				return nil, err
			}
			raw = protowire.AppendBytes(protowire.AppendTag(nil, num, typ), sorted)
		}
		fields = append(fields, field{num, raw})
		b = b[n+m:]
	}
	slices.SortStableFunc(fields, func(x, y field) int { return int(x.num) - int(y.num) })
	out := make([]byte, 0, len(b))
	for _, f := range fields {
		out = append(out, f.raw...)
	}
	return out, nil
}
