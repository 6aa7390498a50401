package secret

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// cheap keeps the tests fast; the defaults are checked separately.
var cheap = Params{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashVerifyRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name, secret string
	}{
		{"empty", ""},
		{"ascii", "correct horse battery staple"},
		{"unicode", "mötley crüe ✓"},
		{"binary", "a\x00b\xff"},
		{"longest", strings.Repeat("x", MaxSecretLen)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := Hash(tc.secret, cheap)
			if err != nil {
				t.Fatal(err)
			}
			ok, err := Verify(tc.secret, enc)
			if err != nil || !ok {
				t.Fatalf("Verify(right secret) = %v, %v; want true, nil", ok, err)
			}
			wrong := tc.secret + "!"
			if len(tc.secret) == MaxSecretLen {
				wrong = tc.secret[:len(tc.secret)-1] + "y"
			}
			ok, err = Verify(wrong, enc)
			if err != nil || ok {
				t.Fatalf("Verify(wrong secret) = %v, %v; want false, nil", ok, err)
			}
		})
	}
}

func TestHashSaltsEveryCall(t *testing.T) {
	a, err := Hash("same", cheap)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Hash("same", cheap)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two hashes of the same secret are equal: %s", a)
	}
}

// TestReferenceVector checks interoperability with the argon2 reference
// implementation (phc-winner-argon2 src/test.c).
func TestReferenceVector(t *testing.T) {
	const ref = "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"
	ok, err := Verify("password", ref)
	if err != nil || !ok {
		t.Fatalf("Verify(reference) = %v, %v; want true, nil", ok, err)
	}
	if ok, err := Verify("passwore", ref); err != nil || ok {
		t.Fatalf("Verify(reference, wrong) = %v, %v; want false, nil", ok, err)
	}
	want := Params{Time: 2, MemoryKiB: 256, Threads: 1, SaltLen: 8, KeyLen: 32}
	if got, err := ParamsOf(ref); err != nil || got != want {
		t.Fatalf("ParamsOf(reference) = %+v, %v; want %+v", got, err, want)
	}
}

func TestParamsRecorded(t *testing.T) {
	for _, p := range []Params{
		cheap,
		{Time: 2, MemoryKiB: 128, Threads: 2, SaltLen: 8, KeyLen: 16},
		{Time: 1, MemoryKiB: 256, Threads: 4, SaltLen: 64, KeyLen: 64},
	} {
		enc, err := Hash("pw", p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParamsOf(enc)
		if err != nil || got != p {
			t.Errorf("ParamsOf(Hash(%+v)) = %+v, %v", p, got, err)
		}
		if NeedsRehash(enc, p) {
			t.Errorf("NeedsRehash(Hash(%+v), same params) = true", p)
		}
		stronger := p
		stronger.Time++
		if !NeedsRehash(enc, stronger) {
			t.Errorf("NeedsRehash(Hash(%+v), stronger) = false", p)
		}
	}
	if !NeedsRehash("garbage", cheap) {
		t.Error("NeedsRehash(garbage) = false")
	}
}

func TestDefaultsAreStrong(t *testing.T) {
	if want := (Params{Time: 3, MemoryKiB: 64 << 10, Threads: 4, SaltLen: 16, KeyLen: 32}); PasswordParams != want {
		t.Errorf("PasswordParams = %+v, want RFC 9106 option 2 %+v", PasswordParams, want)
	}
	if TokenParams.MemoryKiB < 8<<10 || TokenParams.SaltLen < 16 || TokenParams.KeyLen < 32 {
		t.Errorf("TokenParams = %+v, weaker than documented", TokenParams)
	}
	for _, p := range []Params{PasswordParams, TokenParams} {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
}

func TestHashRejectsBadParams(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Params
	}{
		{"zero", Params{}},
		{"no time", Params{Time: 0, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}},
		{"too many passes", Params{Time: MaxTime + 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}},
		{"no threads", Params{Time: 1, MemoryKiB: 64, Threads: 0, SaltLen: 16, KeyLen: 32}},
		{"too many threads", Params{Time: 1, MemoryKiB: 1024, Threads: MaxThreads + 1, SaltLen: 16, KeyLen: 32}},
		{"memory below 8 KiB per lane", Params{Time: 1, MemoryKiB: 15, Threads: 2, SaltLen: 16, KeyLen: 32}},
		{"memory too large", Params{Time: 1, MemoryKiB: MaxMemoryKiB + 1, Threads: 1, SaltLen: 16, KeyLen: 32}},
		{"short salt", Params{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: MinSaltLen - 1, KeyLen: 32}},
		{"long salt", Params{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: MaxSaltLen + 1, KeyLen: 32}},
		{"short key", Params{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: MinKeyLen - 1}},
		{"long key", Params{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: MaxKeyLen + 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Hash("pw", tc.p); !errors.Is(err, ErrParams) {
				t.Fatalf("Hash with %+v: err = %v, want ErrParams", tc.p, err)
			}
		})
	}
}

func TestSecretTooLong(t *testing.T) {
	long := strings.Repeat("x", MaxSecretLen+1)
	if _, err := Hash(long, cheap); !errors.Is(err, ErrSecretTooLong) {
		t.Errorf("Hash: err = %v, want ErrSecretTooLong", err)
	}
	enc, err := Hash("x", cheap)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := Verify(long, enc); ok || !errors.Is(err, ErrSecretTooLong) {
		t.Errorf("Verify = %v, %v; want false, ErrSecretTooLong", ok, err)
	}
}

func TestVerifyMalformed(t *testing.T) {
	const salt, key = "c29tZXNhbHQ", "nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"
	for _, tc := range []struct {
		name, enc string
		want      error
	}{
		{"empty", "", ErrMalformed},
		{"not phc", "plaintext", ErrMalformed},
		{"too long", "$argon2id$v=19$m=256,t=2,p=1$" + strings.Repeat("A", MaxEncodedLen) + "$" + key, ErrMalformed},
		{"argon2i", "$argon2i$v=19$m=256,t=2,p=1$" + salt + "$" + key, ErrMalformed},
		{"bcrypt", "$2a$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ012", ErrMalformed},
		{"old version", "$argon2id$v=16$m=256,t=2,p=1$" + salt + "$" + key, ErrMalformed},
		{"missing version", "$argon2id$m=256,t=2,p=1$" + salt + "$" + key, ErrMalformed},
		{"extra field", "$argon2id$v=19$m=256,t=2,p=1$" + salt + "$" + key + "$", ErrMalformed},
		{"leading garbage", "x$argon2id$v=19$m=256,t=2,p=1$" + salt + "$" + key, ErrMalformed},
		{"params reordered", "$argon2id$v=19$t=2,m=256,p=1$" + salt + "$" + key, ErrMalformed},
		{"param missing", "$argon2id$v=19$m=256,t=2$" + salt + "$" + key, ErrMalformed},
		{"param signed", "$argon2id$v=19$m=+256,t=2,p=1$" + salt + "$" + key, ErrMalformed},
		{"param leading zero", "$argon2id$v=19$m=0256,t=2,p=1$" + salt + "$" + key, ErrMalformed},
		{"param not a number", "$argon2id$v=19$m=lots,t=2,p=1$" + salt + "$" + key, ErrMalformed},
		{"param overflows uint32", "$argon2id$v=19$m=4294967296,t=2,p=1$" + salt + "$" + key, ErrMalformed},
		{"threads overflow uint8", "$argon2id$v=19$m=256,t=2,p=256$" + salt + "$" + key, ErrMalformed},
		{"absurd memory", "$argon2id$v=19$m=4294967295,t=2,p=1$" + salt + "$" + key, ErrParams},
		{"absurd passes", "$argon2id$v=19$m=256,t=1000000,p=1$" + salt + "$" + key, ErrParams},
		{"zero passes", "$argon2id$v=19$m=256,t=0,p=1$" + salt + "$" + key, ErrParams},
		{"short salt", "$argon2id$v=19$m=256,t=2,p=1$c29tZQ$" + key, ErrParams},
		{"empty hash", "$argon2id$v=19$m=256,t=2,p=1$" + salt + "$", ErrParams},
		{"padded salt", "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ=$" + key, ErrMalformed},
		{"newline in salt", "$argon2id$v=19$m=256,t=2,p=1$c29tZX\nNhbHQ$" + key, ErrMalformed},
		{"url alphabet", "$argon2id$v=19$m=256,t=2,p=1$" + salt + "$nf65EOgLrQMR_uIPnA4rEsF5h7TKyQwu9U1bMCHGi_4", ErrMalformed},
		{"non-canonical tail bits", "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHR$" + key, ErrMalformed},
		{"huge salt", "$argon2id$v=19$m=256,t=2,p=1$" + base64.RawStdEncoding.EncodeToString(make([]byte, MaxSaltLen+1)) + "$" + key, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := Verify("password", tc.enc)
			if ok || !errors.Is(err, tc.want) {
				t.Fatalf("Verify(%q) = %v, %v; want false, %v", tc.enc, ok, err, tc.want)
			}
		})
	}
}

func TestNewToken(t *testing.T) {
	seen := make(map[string]bool)
	for range 100 {
		tok, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) != TokenBytes {
			t.Fatalf("token %q: %d bytes, %v; want %d bytes of base64url", tok, len(raw), err, TokenBytes)
		}
		if seen[tok] {
			t.Fatalf("token %q repeated", tok)
		}
		seen[tok] = true
	}
}

func FuzzDecode(f *testing.F) {
	for _, p := range []Params{cheap, {Time: 2, MemoryKiB: 256, Threads: 3, SaltLen: 8, KeyLen: 64}} {
		enc, err := Hash("seed", p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Add("$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4")
	f.Add("$argon2id$v=19$m=,t=,p=$$")
	f.Fuzz(func(t *testing.T, enc string) {
		h, err := decode(enc)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrParams) {
				t.Fatalf("decode(%q): unexpected error class %v", enc, err)
			}
			return
		}
		if err := h.params.Validate(); err != nil {
			t.Fatalf("decode(%q) accepted out-of-bounds params: %v", enc, err)
		}
		if again := encode(h.params, h.salt, h.key); again != enc {
			t.Fatalf("decode(%q) re-encodes as %q: the parser accepts a second spelling", enc, again)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	for _, tc := range []struct {
		name string
		p    Params
	}{{"token", TokenParams}, {"password", PasswordParams}} {
		b.Run(tc.name, func(b *testing.B) {
			enc, err := Hash("0123456789abcdef0123456789abcdef0123456789a", tc.p)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if ok, err := Verify("0123456789abcdef0123456789abcdef0123456789a", enc); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}
