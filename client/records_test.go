package client

import (
	"github.com/quic-s/quics/cas"

	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/quic-s/quics/chunker"
	"github.com/quic-s/quics/syncproto"
)

func TestRecordRoundTrip(t *testing.T) {
	r := Root{Name: "n", Dir: "/a/b", Chunking: chunker.DefaultParams, Cursor: 1 << 40, LastSync: time.Unix(0, 123)}
	got, err := decodeRoot("n", encodeRoot(r))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("root (-want +got):\n%s", diff)
	}
	for _, rec := range []FileRecord{sampleRecord("p", 1), {Path: "zero"}, {Path: "neg", Stat: FileStat{MTime: -5, CTime: -1}, Deleted: true},
		{Path: "cand", Pending: true, HasCandidate: true, Candidate: cas.Sum([]byte("kept"))},
		{Path: "cand-deleted", Deleted: true, HasCandidate: true}} {
		f, err := decodeFile(rec.Path, encodeFile(&rec))
		if err != nil {
			t.Fatal(err)
		}
		f.Chunks, err = decodeChunks(rec.Path, encodeChunks(rec.Chunks))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(rec, f); diff != "" {
			t.Errorf("file (-want +got):\n%s", diff)
		}
	}
}

func TestDecodeRefusesDamage(t *testing.T) {
	rec := sampleRecord("p", 1)
	file := encodeFile(&rec)
	chunks := encodeChunks(rec.Chunks)
	root := encodeRoot(Root{Dir: "/x", Chunking: testParams})
	set := func(b []byte, i int, v byte) []byte {
		c := bytes.Clone(b)
		c[i] = v
		return c
	}
	tests := []struct {
		name   string
		decode func() error
	}{
		{"empty file record", func() error { _, err := decodeFile("p", nil); return err }},
		{"file record format 2", func() error { _, err := decodeFile("p", set(file, 0, 2)); return err }},
		{"unknown flag", func() error { _, err := decodeFile("p", set(file, 1, 0x80)); return err }},
		{"truncated file record", func() error { _, err := decodeFile("p", file[:len(file)-1]); return err }},
		{"trailing byte", func() error { _, err := decodeFile("p", append(bytes.Clone(file), 0)); return err }},
		{"huge file record", func() error { _, err := decodeFile("p", make([]byte, maxRecordLen+1)); return err }},
		{"negative size", func() error {
			r := rec
			r.Stat.Size = -1
			_, err := decodeFile("p", encodeFile(&r))
			return err
		}},
		{"mode beyond 0777", func() error {
			r := rec
			r.Stat.Mode = 0o1777
			_, err := decodeFile("p", encodeFile(&r))
			return err
		}},
		{"chunk count larger than data", func() error { _, err := decodeChunks("p", set(chunks, 1, 3)); return err }},
		{"chunk count beyond MaxChunks", func() error {
			_, err := decodeChunks("p", []byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
			return err
		}},
		{"overlong varint", func() error { _, err := decodeChunks("p", []byte{1, 0x80, 0x00}); return err }},
		{"zero-size chunk", func() error {
			_, err := decodeChunks("p", encodeChunks([]syncproto.ChunkRef{{Size: 0}}))
			return err
		}},
		{"root dir length past the end", func() error { _, err := decodeRoot("r", set(root, 1, 100)); return err }},
		{"root chunk size beyond the chunker's limit", func() error {
			_, err := decodeRoot("r", encodeRoot(Root{Dir: "/", Chunking: chunker.Params{Max: chunker.LargestMax + 1}}))
			return err
		}},
	}
	for _, tc := range tests {
		if err := tc.decode(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", tc.name, err)
		}
	}
}

func FuzzDecodeFile(f *testing.F) {
	for i := range byte(4) {
		rec := sampleRecord("p", i)
		f.Add(encodeFile(&rec))
	}
	f.Add(encodeFile(&FileRecord{Path: "x", Deleted: true}))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := decodeFile("p", b)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same bytes: one encoding per record.
		if again := encodeFile(&rec); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gives %x", b, again)
		}
	})
}

func FuzzDecodeChunks(f *testing.F) {
	f.Add(encodeChunks(sampleRecord("p", 1).Chunks))
	f.Add(encodeChunks(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		chunks, err := decodeChunks("p", b)
		if err != nil {
			return
		}
		if len(chunks) > MaxChunks {
			t.Fatalf("%d chunks decoded", len(chunks))
		}
		if again := encodeChunks(chunks); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gives %x", b, again)
		}
	})
}

func FuzzDecodeRoot(f *testing.F) {
	f.Add(encodeRoot(Root{Dir: "/home/u/docs", Chunking: chunker.DefaultParams, Cursor: 9, LastSync: time.Unix(1, 2)}))
	f.Add(encodeRoot(Root{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRoot("r", b)
		if err != nil {
			return
		}
		if again := encodeRoot(r); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gives %x", b, again)
		}
	})
}

func FuzzDecodeConfig(f *testing.F) {
	for _, c := range []Config{
		{ClientID: uuid.MustParse("7d444840-9dc0-11d1-b245-5ffdce74fad2")},
		{ClientID: uuid.MustParse("7d444840-9dc0-11d1-b245-5ffdce74fad2"), DeviceName: "pc", ServerAddr: "h:1", Token: "t", Fingerprint: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"},
	} {
		b, err := encodeConfig(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeConfig(b)
		if err != nil {
			if !errors.Is(err, ErrBadConfig) {
				t.Fatalf("error %v does not wrap ErrBadConfig", err)
			}
			return
		}
		if err := c.validate(); err != nil {
			t.Fatalf("decoded an invalid config: %v", err)
		}
		enc, err := encodeConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := decodeConfig(enc); err != nil || back != c {
			t.Fatalf("round trip: %+v, %v; want %+v", back, err, c)
		}
	})
}
