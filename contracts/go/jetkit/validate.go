package jetkit

import (
	"errors"
	"sync"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
)

var validator = sync.OnceValues(func() (protovalidate.Validator, error) { return protovalidate.New() })

// Validate checks m against the protovalidate rules of its contract. It fails with
// JK_CONTRACT_VIOLATION naming the field and rule of each violation.
func Validate(m proto.Message) error {
	v, err := validator()
	if err != nil {
		return err
	}
	err = v.Validate(m)
	var ve *protovalidate.ValidationError
	if errors.As(err, &ve) {
		return newError(CodeViolation, err, "%s breaks its contract: %s", m.ProtoReflect().Descriptor().FullName(), err.Error())
	}
	return err
}
