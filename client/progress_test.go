package client

import (
	"bytes"
	"slices"
	"sync"
	"testing"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// progressSums adds up what a Progress listener is told.
type progressSums struct {
	mu             sync.Mutex
	planned, moved map[Direction]int64
	plans          []int64
}

func newProgressSums() *progressSums {
	return &progressSums{planned: map[Direction]int64{}, moved: map[Direction]int64{}}
}

func (s *progressSums) Plan(d Direction, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.planned[d] += n
	s.plans = append(s.plans, n)
}

func (s *progressSums) Moved(d Direction, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.moved[d] += n
}

func TestProgressSettle(t *testing.T) {
	sums := newProgressSums()
	pr := progress{to: sums}
	pr.plan(Upload, 100)
	pr.moved(Upload, 60) // 40 planned bytes never moved
	pr.plan(Download, 10)
	pr.moved(Download, 25) // the head claimed fewer bytes than were written
	pr.settle()
	for _, d := range []Direction{Upload, Download} {
		if sums.planned[d] != sums.moved[d] {
			t.Errorf("%v after settle: planned %d, moved %d", d, sums.planned[d], sums.moved[d])
		}
	}
	if sums.moved[Upload] != 60 || sums.moved[Download] != 25 {
		t.Errorf("moved %v, want upload 60, download 25", sums.moved)
	}
	if want := []int64{100, 10, -40, 15}; !slices.Equal(sums.plans, want) {
		t.Errorf("plans %v, want %v", sums.plans, want)
	}
	// A settled pass has nothing left to take back.
	pr.settle()
	if len(sums.plans) != 4 {
		t.Errorf("second settle planned again: %v", sums.plans)
	}
}

func TestProgressNilListener(t *testing.T) {
	var pr progress
	pr.plan(Upload, 5)
	pr.moved(Download, 7)
	pr.settle()
	if pr.up.planned.Load() != 0 || pr.down.moved.Load() != 0 {
		t.Error("counts kept without a listener")
	}
	var buf bytes.Buffer
	n, err := progressWriter{w: &buf, pr: &pr}.Write([]byte("abc"))
	if n != 3 || err != nil || buf.String() != "abc" {
		t.Errorf("write through progressWriter: %d, %v, %q", n, err, buf.String())
	}
}

func TestProgressWriterCountsWrittenBytes(t *testing.T) {
	sums := newProgressSums()
	pr := progress{to: sums}
	var buf bytes.Buffer
	w := progressWriter{w: &buf, pr: &pr}
	for _, s := range []string{"hello ", "", "world"} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if sums.moved[Download] != 11 || sums.moved[Upload] != 0 {
		t.Errorf("moved %v, want 11 downloaded", sums.moved)
	}
}

func TestDecidePull(t *testing.T) {
	old, cur := cas.Sum([]byte("old")), cas.Sum([]byte("new"))
	head := &syncpb.FileHead{Path: "a", Seq: 5, Hash: cur[:], Size: 3, Mode: 0o644}
	deleted := &syncpb.FileHead{Path: "a", Seq: 5, Deleted: true}
	tests := []struct {
		name string
		rec  *FileRecord
		head *syncpb.FileHead
		want pullAction
	}{
		{"new file", nil, head, pullContent},
		{"deleted, never had it", nil, deleted, pullDeletion},
		{"our own commit", &FileRecord{BaseSeq: 5, Hash: cur}, head, pullNothing},
		{"pulled later version already", &FileRecord{BaseSeq: 7, Hash: old}, head, pullNothing},
		{"pending local change", &FileRecord{BaseSeq: 3, Hash: old, Pending: true}, head, pullNothing},
		{"pending beats deletion", &FileRecord{BaseSeq: 3, Pending: true}, deleted, pullNothing},
		{"remote deletion", &FileRecord{BaseSeq: 3, Hash: old}, deleted, pullDeletion},
		{"edited remotely", &FileRecord{BaseSeq: 3, Hash: old, Stat: FileStat{Mode: 0o644}}, head, pullContent},
		{"same content and mode", &FileRecord{BaseSeq: 3, Hash: cur, Stat: FileStat{Mode: 0o644}}, head, pullBase},
		{"same content, other mode", &FileRecord{BaseSeq: 3, Hash: cur, Stat: FileStat{Mode: 0o600}}, head, pullContent},
		{"same hash but deleted locally", &FileRecord{BaseSeq: 3, Hash: cur, Deleted: true, Stat: FileStat{Mode: 0o644}}, head, pullContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hash, err := headHash(tt.head)
			if err != nil {
				t.Fatal(err)
			}
			if got := decidePull(tt.rec, tt.head, hash); got != tt.want {
				t.Errorf("decidePull = %d, want %d", got, tt.want)
			}
		})
	}
}
