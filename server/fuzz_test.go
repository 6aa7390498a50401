package server

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

const fuzzMaxChunk = 256 << 10

// encodeRefs packs a chunk list for the fuzzer: 32-byte ID, 4-byte size.
func encodeRefs(refs []syncproto.ChunkRef) []byte {
	var b []byte
	for _, r := range refs {
		b = append(b, r.ID[:]...)
		b = binary.LittleEndian.AppendUint32(b, r.Size)
	}
	return b
}

func decodeRefs(b []byte) []syncproto.ChunkRef {
	var refs []syncproto.ChunkRef
	for len(b) >= cas.IDSize+4 && len(refs) < 64 {
		var r syncproto.ChunkRef
		copy(r.ID[:], b)
		r.Size = binary.LittleEndian.Uint32(b[cas.IDSize:])
		refs = append(refs, r)
		b = b[cas.IDSize+4:]
	}
	return refs
}

// FuzzParseProposal feeds arbitrary proposals to the request validation:
// it never panics, refuses with a protocol sentinel, and what it accepts
// keeps every invariant the commit relies on.
func FuzzParseProposal(f *testing.F) {
	seed := func(req *syncpb.ProposeRequest, refs []syncproto.ChunkRef) {
		f.Add(req.GetPath(), req.GetBaseSeq(), req.GetBaseHash(), req.GetHash(), req.GetSize(), req.GetDeleted(), req.GetChunkCount(), encodeRefs(refs))
	}
	data := randomData(3, 300<<10)
	ff := file{data: data, hash: cas.Sum(data)}
	ff.refs = []syncproto.ChunkRef{{ID: cas.Sum(data[:200<<10]), Size: 200 << 10}, {ID: cas.Sum(data[200<<10:]), Size: 100 << 10}}
	seed(request("docs", "a/b.txt", nil, ff), ff.refs)
	seed(request("docs", "a/b.txt", &syncpb.FileHead{Seq: 4, Hash: ff.hash[:]}, ff), ff.refs)
	seed(deleteRequest("docs", "gone", &syncpb.FileHead{Seq: 2}), nil)
	seed(&syncpb.ProposeRequest{Path: "empty", Hash: manifest.EmptyHash[:]}, nil)
	seed(&syncpb.ProposeRequest{Path: "../x", Hash: ff.hash[:], Size: 1, ChunkCount: 1}, ff.refs[:1])
	// Repeated chunks, in a list short enough to dedup without a map and
	// in a longer one.
	for _, n := range []int{3, 3 * smallList} {
		refs := make([]syncproto.ChunkRef, n)
		for i := range refs {
			refs[i] = ff.refs[i%2]
		}
		size := int64(n/2)*(300<<10) + int64(n%2)*(200<<10)
		seed(&syncpb.ProposeRequest{Path: "repeats", Hash: ff.hash[:], Size: size, ChunkCount: uint32(n)}, refs)
	}
	f.Fuzz(func(t *testing.T, path string, baseSeq uint64, baseHash, hash []byte, size int64, deleted bool, count uint32, refBytes []byte) {
		refs := decodeRefs(refBytes)
		req := &syncpb.ProposeRequest{Path: path, BaseSeq: baseSeq, BaseHash: baseHash, Hash: hash, Size: size, Deleted: deleted, ChunkCount: count}
		p, err := parseProposal(req, refs, fuzzMaxChunk)
		if err != nil {
			if !errors.Is(err, syncproto.ErrBadRequest) && !errors.Is(err, syncproto.ErrInvalidPath) {
				t.Fatalf("refusal %v is neither BadRequest nor InvalidPath", err)
			}
			return
		}
		if relpath.Check(p.path) != nil {
			t.Fatalf("accepted path %q", p.path)
		}
		if int(count) != len(refs) {
			t.Fatalf("accepted chunk_count %d with %d chunks", count, len(refs))
		}
		if p.deleted {
			if !p.hash.IsZero() || p.size != 0 || len(p.chunks) != 0 {
				t.Fatalf("accepted deletion with content: %+v", p)
			}
			return
		}
		if p.hash.IsZero() || p.size == 0 && (p.hash != manifest.EmptyHash || len(p.chunks) != 0) {
			t.Fatalf("accepted content %+v", p)
		}
		var total uint64
		distinct := make(cas.IDSet)
		for _, c := range p.chunks {
			if c.Size == 0 || c.Size > fuzzMaxChunk {
				t.Fatalf("accepted chunk size %d", c.Size)
			}
			total += uint64(c.Size)
			distinct.Insert(c.ID)
		}
		if total != p.size || len(distinct) != len(p.ids) {
			t.Fatalf("accepted %d bytes of chunks for size %d, %d ids for %d distinct", total, p.size, len(p.ids), len(distinct))
		}
	})
}
