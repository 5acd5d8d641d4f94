module jetkit.dev/contracts/gen/go

go 1.26

require (
	buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go v1.36.12-20260825204119-511051f7f437.2
	google.golang.org/protobuf v1.36.12
)
