// Package recordpb holds the protobuf messages that package manifest
// stores as badger values. The code is generated from records.proto with
// protoc-gen-go (see `make proto`); edit the .proto, never the .pb.go.
// Nothing outside manifest uses these types: manifest converts them to its
// own plain structs at the boundary and checks every bound there.
package recordpb
