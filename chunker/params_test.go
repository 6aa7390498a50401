package chunker

import (
	"errors"
	"math/bits"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Params
		ok   bool
	}{
		{"default", DefaultParams, true},
		{"smallest", Params{Min: 64, Avg: 128, Max: 129}, true},
		{"largest", Params{Min: 1 << 20, Avg: 8 << 20, Max: LargestMax}, true},
		{"min not power of two is fine", Params{Min: 1000, Avg: 4096, Max: 10000}, true},
		{"zero", Params{}, false},
		{"negative", Params{Min: -1, Avg: 128, Max: 256}, false},
		{"min below window", Params{Min: 63, Avg: 128, Max: 256}, false},
		{"avg equals min", Params{Min: 128, Avg: 128, Max: 256}, false},
		{"avg below min", Params{Min: 256, Avg: 128, Max: 512}, false},
		{"max equals avg", Params{Min: 64, Avg: 128, Max: 128}, false},
		{"max below avg", Params{Min: 64, Avg: 1024, Max: 512}, false},
		{"avg not power of two", Params{Min: 64, Avg: 1000, Max: 4096}, false},
		{"max too large", Params{Min: 1 << 20, Avg: 8 << 20, Max: LargestMax + 1}, false},
		{"huge", Params{Min: 1 << 40, Avg: 1 << 41, Max: 1 << 42}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate(%v) = %v, want nil", tt.p, err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidParams) {
				t.Fatalf("Validate(%v) = %v, want ErrInvalidParams", tt.p, err)
			}
			_, newErr := New(nil, tt.p)
			_, bErr := Boundaries(nil, tt.p)
			if (newErr == nil) != tt.ok || (bErr == nil) != tt.ok {
				t.Fatalf("New error %v, Boundaries error %v; want error: %v", newErr, bErr, !tt.ok)
			}
		})
	}
}

func TestMasks(t *testing.T) {
	tests := []struct {
		avg                   int
		wantStrict, wantLoose uint64 // pinned for the defaults only (0: not pinned)
		strictOnes, looseOnes int
	}{
		{avg: 64 << 10, wantStrict: 0xa4a4a4a4a4a40000, wantLoose: 0x9224489224480000, strictOnes: 18, looseOnes: 14},
		{avg: 128, strictOnes: 9, looseOnes: 5},
		{avg: 8 << 20, strictOnes: 25, looseOnes: 21},
	}
	for _, tt := range tests {
		p := Params{Min: 64, Avg: tt.avg, Max: 2 * tt.avg}
		strict, loose := p.masks()
		if got := bits.OnesCount64(strict); got != tt.strictOnes {
			t.Errorf("avg %d: strict mask %#016x has %d ones, want %d", tt.avg, strict, got, tt.strictOnes)
		}
		if got := bits.OnesCount64(loose); got != tt.looseOnes {
			t.Errorf("avg %d: loose mask %#016x has %d ones, want %d", tt.avg, loose, got, tt.looseOnes)
		}
		for _, m := range []uint64{strict, loose} {
			if m>>63 != 1 || m&(1<<(64-maskSpan)-1) != 0 {
				t.Errorf("avg %d: mask %#016x not within the top %d bits with bit 63 set", tt.avg, m, maskSpan)
			}
			if m&(m>>1) != 0 && bits.OnesCount64(m) <= maskSpan/2 {
				t.Errorf("avg %d: mask %#016x has adjacent bits though it has room to spread", tt.avg, m)
			}
		}
		if tt.wantStrict != 0 && (strict != tt.wantStrict || loose != tt.wantLoose) {
			t.Errorf("avg %d: masks %#016x, %#016x; want %#016x, %#016x", tt.avg, strict, loose, tt.wantStrict, tt.wantLoose)
		}
	}
}
