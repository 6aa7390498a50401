package client

import "testing"

func TestAdvanceCursor(t *testing.T) {
	tests := []struct {
		name   string
		cursor uint64
		own    []uint64
		want   uint64
	}{
		{"nothing committed", 5, nil, 5},
		{"own commits right after", 5, []uint64{6, 7, 8}, 8},
		{"out of order", 5, []uint64{8, 6, 7}, 8},
		{"someone else's commit in between", 5, []uint64{6, 8}, 6},
		{"someone else's commit first", 5, []uint64{7, 8}, 5},
		{"old seqs ignored", 5, []uint64{3, 5, 6}, 6},
		{"duplicates", 5, []uint64{6, 6, 7}, 7},
	}
	for _, tt := range tests {
		if got := advanceCursor(tt.cursor, tt.own); got != tt.want {
			t.Errorf("%s: advanceCursor(%d, %v) = %d, want %d", tt.name, tt.cursor, tt.own, got, tt.want)
		}
	}
}
